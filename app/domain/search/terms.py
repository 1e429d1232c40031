"""What a text is searched by: its terms (lower-cased words, common English words left out)."""

from __future__ import annotations

import re
from collections import Counter

WORD = re.compile(r"\w+")
MAX_TERM_CHARS = 64
# Words so frequent they only add noise to BM25 and bytes to the postings.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)


def terms(text: str) -> list[str]:
    """The text's terms, in order, repeats kept."""
    return [
        word
        for word in WORD.findall(text.casefold())
        if word not in STOPWORDS and len(word) <= MAX_TERM_CHARS
    ]


def query_terms(text: str) -> list[str]:
    """A query's distinct terms, in order of first appearance."""
    return list(dict.fromkeys(terms(text)))


def term_frequencies(text: str) -> tuple[int, Counter[str]]:
    """(document length in terms, how often each term occurs)."""
    found = terms(text)
    return len(found), Counter(found)
