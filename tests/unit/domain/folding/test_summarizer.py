"""Summarizers: incremental prompts, chunking, NONE handling, the extractive bounds."""

from app.domain import tokens
from app.domain.folding.extractive import ExtractiveSummarizer
from app.domain.folding.summarizer import (
    DEFAULT_PROMPT,
    ChunkedSummarizer,
    Line,
    chunk_lines,
    clean_answer,
)


class RecordingCompletion:
    def __init__(self, answers=None):
        self.calls: list[tuple[str, str, str]] = []
        self.answers = list(answers or [])

    def __call__(self, model, system, user):
        self.calls.append((model, system, user))
        answer = self.answers.pop(0) if self.answers else f"summary after {len(self.calls)} calls"
        return answer, 100, 10


def lines(n: int, words: int = 5) -> list[Line]:
    return [Line("Human" if i % 2 == 0 else "AI", f"line {i} " + "word " * words) for i in range(n)]


def test_one_call_carries_the_previous_summary_and_only_the_new_lines_in_order():
    complete = RecordingCompletion(["the new summary"])
    result = ChunkedSummarizer(complete).summarize("old summary", lines(3), model="gpt-4o-mini")
    assert result.summary == "the new summary"
    assert result.calls == 1 and result.prompt_tokens == 100 and result.completion_tokens == 10
    ((model, system, user),) = complete.calls
    assert model == "gpt-4o-mini" and system == DEFAULT_PROMPT
    assert "old summary" in user
    positions = [user.index(f"line {i} ") for i in range(3)]
    assert positions == sorted(positions), "lines must be in chronological order"


def test_tenant_prompt_override_replaces_the_system_prompt():
    complete = RecordingCompletion()
    ChunkedSummarizer(complete).summarize(None, lines(1), model="m", prompt="Résume en français.")
    assert complete.calls[0][1] == "Résume en français."


def test_a_backlog_larger_than_the_context_is_folded_in_sequential_chunks():
    complete = RecordingCompletion()
    summarizer = ChunkedSummarizer(complete, context_tokens=1024, max_output_tokens=64)
    result = summarizer.summarize(None, lines(200, words=20), model="gpt-4o-mini")
    assert result.calls == len(complete.calls) > 1
    # Each call's "current summary" is the previous call's answer.
    for index, (_, _, user) in enumerate(complete.calls[1:], start=1):
        assert f"summary after {index} calls" in user
    # Every line was sent exactly once across the chunks.
    sent = "\n".join(user for _, _, user in complete.calls)
    for i in range(200):
        assert sent.count(f"line {i} word") == 1
    assert result.summary == f"summary after {result.calls} calls"


def test_chunks_fit_the_budget_and_an_oversized_line_is_shortened_not_dropped():
    huge = Line("Human", "start " + "x y z " * 5000 + " end")
    chunks = chunk_lines([Line("AI", "hi"), huge, Line("AI", "bye")], budget_tokens=200, model=None)
    flat = [line for chunk in chunks for line in chunk]
    assert len(flat) == 3
    assert flat[1].startswith("Human: start") and flat[1].endswith("end") and "[…]" in flat[1]
    for chunk in chunks:
        assert sum(tokens.count_tokens(line) + 1 for line in chunk) <= 200


def test_none_like_or_empty_answers_keep_the_previous_summary():
    for answer in ("NONE", "none.", "  ", "", None, "Nothing new"):
        assert clean_answer(answer) is None
    result = ChunkedSummarizer(RecordingCompletion(["NONE"])).summarize("kept summary", lines(2), model="m")
    assert result.summary is None and result.calls == 1


def test_extractive_summary_is_deterministic_and_bounded():
    summarizer = ExtractiveSummarizer(max_chars=300, line_chars=60)
    first = summarizer.summarize(None, lines(4), model="m").summary
    assert first == summarizer.summarize(None, lines(4), model="m").summary
    assert first is not None and first.startswith("Human: line 0")
    summary = first
    for _ in range(20):
        summary = summarizer.summarize(summary, lines(6, words=30), model="m").summary or summary
        assert len(summary) <= 300
    assert summary.startswith("(") and "earlier lines omitted" in summary
    assert summary.rstrip().endswith("…")  # long lines are cut to line_chars


def test_extractive_keeps_the_first_sentence_of_each_line():
    result = ExtractiveSummarizer().summarize(
        None, [Line("Human", "We ship on the 14th. Also, the logo is blue.")], model="m"
    )
    assert result.summary == "Human: We ship on the 14th."
    assert result.total_tokens == 0


def test_llm_client_selection_follows_motorhead_variables(monkeypatch):
    import openai

    from app.llm import build_summarizer
    from config import load_settings

    created = []
    monkeypatch.setattr(openai, "OpenAI", lambda **kw: created.append(("openai", kw)) or _Client())
    monkeypatch.setattr(openai, "AzureOpenAI", lambda **kw: created.append(("azure", kw)) or _Client())
    assert build_summarizer(load_settings()).name == "extractive"
    build_summarizer(load_settings(openai_api_key="sk", openai_base_url="http://ollama:11434/v1"))
    assert created[-1][0] == "openai" and created[-1][1]["base_url"] == "http://ollama:11434/v1"
    build_summarizer(
        load_settings(
            azure_api_key="k",
            azure_api_base="https://x.openai.azure.com",
            azure_deployment_id="chat",
            azure_deployment_id_ada="ada",
        )
    )
    kind, kwargs = created[-1]
    assert kind == "azure" and kwargs["azure_deployment"] == "chat"
    assert kwargs["azure_endpoint"] == "https://x.openai.azure.com"


class _Client:
    def close(self):
        pass
