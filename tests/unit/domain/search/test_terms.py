"""The tokenizer: what a text is searched by."""

from __future__ import annotations

import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.search.terms import MAX_TERM_CHARS, STOPWORDS, query_terms, term_frequencies, terms


def test_terms_are_the_lower_cased_words_in_order_with_repeats_kept():
    assert terms("Red apples, GREEN apples; red!") == ["red", "apples", "green", "apples", "red"]


def test_punctuation_and_whitespace_only_separate_words():
    assert terms("e-mail: foo@bar.com\t(x)\n[y]/z") == ["e", "mail", "foo", "bar", "com", "x", "y", "z"]


def test_an_apostrophe_splits_a_word():
    assert terms("don't") == ["don", "t"]


def test_digits_and_underscores_belong_to_words():
    assert terms("order_id 4711 v2") == ["order_id", "4711", "v2"]


def test_common_english_words_are_left_out_whatever_their_case():
    assert terms("The cat IS on the mat and it WAS happy") == ["cat", "mat", "happy"]
    assert terms("a an the to of") == []


def test_every_stopword_is_itself_lower_case_and_a_single_word():
    for word in STOPWORDS:
        assert re.fullmatch(r"[a-z]+", word), word


def test_case_folding_makes_sharp_s_and_ss_the_same_term():
    assert terms("Straße STRASSE strasse") == ["strasse"] * 3


def test_unicode_letters_form_words():
    assert terms("Café Größe 東京 naïve") == ["café", "grösse", "東京", "naïve"]


def test_a_word_of_exactly_the_maximum_length_is_kept_and_a_longer_one_dropped():
    kept, dropped = "k" * MAX_TERM_CHARS, "d" * (MAX_TERM_CHARS + 1)
    assert terms(f"{kept} {dropped} short") == [kept, "short"]


def test_the_length_limit_applies_to_the_case_folded_word():
    # "ß" folds to "ss": 40 of them are 80 characters once folded, over the limit.
    assert terms("ß" * 40) == []
    assert terms("ß" * 32) == ["ss" * 32]


def test_empty_and_blank_texts_have_no_terms():
    assert terms("") == []
    assert terms("  \n\t ... !!! ") == []


def test_query_terms_are_distinct_in_order_of_first_appearance():
    assert query_terms("beta Alpha beta gamma ALPHA the") == ["beta", "alpha", "gamma"]


def test_query_terms_of_only_stopwords_are_empty():
    assert query_terms("what is it to you") == []


def test_term_frequencies_count_the_document_length_without_stopwords():
    length, frequencies = term_frequencies("The fox and the other fox jumped over the fox")
    assert length == 6
    assert frequencies == Counter({"fox": 3, "other": 1, "jumped": 1, "over": 1})


def test_term_frequencies_of_an_empty_text_are_zero_and_empty():
    assert term_frequencies("") == (0, Counter())
    assert term_frequencies("the of and") == (0, Counter())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_terms_are_words_without_whitespace_so_the_index_record_can_split_them(text):
    # The index record is "<length> <term> <term>..." and delete_message.lua splits it on
    # whitespace: a term holding any would break deleting the message.
    for term in terms(text):
        assert re.fullmatch(r"\w+", term)
        assert not any(byte in b" \t\n\r\x0b\x0c" for byte in term.encode())
        assert len(term) <= MAX_TERM_CHARS
        assert term not in STOPWORDS
    length, frequencies = term_frequencies(text)
    assert length == len(terms(text)) == sum(frequencies.values())
