"""The extractive summarizer: first sentences, bounded, with a running count of what fell off."""

from __future__ import annotations

from app.domain.folding.extractive import ExtractiveSummarizer
from app.domain.folding.summarizer import Line


def summarize(previous, lines, **bounds):
    return ExtractiveSummarizer(**bounds).summarize(previous, lines, model="any")


def test_each_line_becomes_its_role_and_first_sentence_in_order():
    result = summarize(None, [Line("Human", "Hi! I am Ada."), Line("AI", "Hello Ada? Nice.")])
    assert result.summary == "Human: Hi!\nAI: Hello Ada?"


def test_a_decimal_point_does_not_end_the_sentence():
    result = summarize(None, [Line("Human", "Pi is 3.14 roughly. More later.")])
    assert result.summary == "Human: Pi is 3.14 roughly."


def test_a_line_without_a_sentence_end_is_kept_whole():
    assert summarize(None, [Line("AI", "no punctuation here")]).summary == "AI: no punctuation here"


def test_whitespace_and_newlines_inside_a_line_collapse_so_each_line_is_one_entry():
    result = summarize(None, [Line("Human", "  first\n\n  words\tthen   more  ")])
    assert result.summary == "Human: first words then more"


def test_a_long_sentence_is_cut_to_line_chars_with_an_ellipsis():
    result = summarize(None, [Line("Human", "x" * 500)], line_chars=40)
    assert result.summary is not None
    gist = result.summary.removeprefix("Human: ")
    assert len(gist) == 40 and gist.endswith("…")


def test_blank_lines_are_skipped():
    result = summarize(None, [Line("Human", "   "), Line("AI", "Kept."), Line("Human", "")])
    assert result.summary == "AI: Kept."


def test_nothing_to_summarize_gives_no_summary():
    assert summarize(None, []).summary is None
    assert summarize(None, [Line("Human", " \n ")]).summary is None


def test_new_lines_are_appended_after_the_previous_summary():
    result = summarize("Human: Earlier.", [Line("AI", "Later.")])
    assert result.summary == "Human: Earlier.\nAI: Later."


def test_an_unchanged_summary_is_reported_as_none_so_the_previous_one_stays():
    assert summarize("Human: Earlier.", [Line("AI", "  ")]).summary is None


def test_over_the_bound_the_oldest_entries_go_and_are_counted_in_a_leading_note():
    lines = [Line("Human", f"Entry number {i}.") for i in range(10)]
    result = summarize(None, lines, max_chars=120)
    assert result.summary is not None and len(result.summary) <= 120
    head, *entries = result.summary.split("\n")
    assert head == f"({10 - len(entries)} earlier lines omitted)"
    assert entries[-1] == "Human: Entry number 9.", "the newest is kept"
    numbers = [int(e.rsplit(" ", 1)[1].rstrip(".")) for e in entries]
    assert numbers == list(range(10 - len(entries), 10))


def test_the_omitted_count_carries_over_from_the_previous_summary_without_a_second_note():
    previous = "(3 earlier lines omitted)\nHuman: Old one.\nAI: Old two."
    result = summarize(previous, [Line("Human", "New " + "w" * 40 + ".")], max_chars=80)
    assert result.summary is not None and len(result.summary) <= 80
    assert result.summary.count("earlier lines omitted") == 1
    head, *entries = result.summary.split("\n")
    omitted = int(head[1:].split()[0])
    assert omitted == 3 + (3 - len(entries)), "previous omissions plus the entries dropped now"
    assert entries[-1].startswith("Human: New w")


def test_a_previous_summary_that_is_only_the_note_keeps_counting():
    result = summarize("(4 earlier lines omitted)", [Line("Human", "Fresh.")])
    assert result.summary == "(4 earlier lines omitted)\nHuman: Fresh."


def test_it_costs_no_llm_calls_or_tokens():
    result = summarize(None, [Line("Human", "Anything.")])
    assert (result.calls, result.prompt_tokens, result.completion_tokens) == (0, 0, 0)
    assert ExtractiveSummarizer.name == "extractive"


def test_model_and_prompt_do_not_change_the_result():
    lines = [Line("Human", "Same. Input.")]
    first = ExtractiveSummarizer().summarize(None, lines, model="a")
    second = ExtractiveSummarizer().summarize(None, lines, model="b", prompt="Write French.")
    assert first.summary == second.summary == "Human: Same."
