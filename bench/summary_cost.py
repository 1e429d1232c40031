"""What summarization costs in LLM tokens: ``python -m bench.summary_cost``.

Posts a 1,000-message conversation (LangChain's pattern: one Human/AI pair per POST)
through the API — the real Flask app on a private redis-server, the real ``openai``
client, the project's fake LLM — waits until every fold has committed, and prints:

* LLM calls made by the incremental summarizer, and its prompt tokens divided by the
  conversation's own tokens (target ≤ 1.5: each message is sent about once);
* the same ratio for a regenerate-from-scratch baseline, which re-sends every message
  folded so far at each fold instead of the previous summary (computed with the same
  tokenizer and prompt, no LLM calls).

The fake LLM's summaries are short (about 20 tokens); a real model's summary is longer and
is re-sent with every call, so with a real model the ratio also grows with summary length:
``(lines + prompt + summary) / lines`` per call. A larger window folds more lines per call.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.domain import tokens  # noqa: E402
from app.domain.folding.summarizer import DEFAULT_PROMPT, Line, build_user_message  # noqa: E402
from config import load_settings  # noqa: E402
from devtools.fake_llm import FakeLLM  # noqa: E402
from devtools.processes import RedisServer  # noqa: E402

WORDS = [
    "release",
    "plan",
    "budget",
    "customer",
    "deadline",
    "review",
    "security",
    "test",
    "deploy",
    "rollback",
    "metrics",
    "latency",
    "invoice",
    "contract",
    "meeting",
    "design",
    "database",
    "cache",
    "queue",
    "incident",
    "owner",
    "risk",
    "scope",
    "estimate",
    "sprint",
    "feature",
    "migration",
    "backup",
    "monitor",
    "alert",
    "ticket",
    "priority",
]


def conversation(n: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)  # noqa: S311 - deterministic sample text
    out = []
    for i in range(n):
        role = "Human" if i % 2 == 0 else "AI"
        length = rng.randint(8, 40)
        out.append((role, " ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + "."))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--window-size", type=int, default=12)
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args(argv)
    for paced in (True, False):
        code = run(args, paced=paced)
        if code:
            return code
    return 0


def settle(client, headers, window_size: int) -> dict:
    deadline = time.monotonic() + 120
    while True:
        state = client.get("/sessions/bench/memory", headers=headers).json
        done = state["pending_summary"] == 0 and len(state["messages"]) <= window_size
        if done or time.monotonic() > deadline:
            return state
        time.sleep(0.005)


def run(args: argparse.Namespace, *, paced: bool) -> int:

    try:
        redis = RedisServer(Path(tempfile.mkdtemp(prefix="recollect-bench-"))).start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    fake = FakeLLM().start()
    try:
        settings = load_settings(
            redis_url=redis.url,
            admin_token="bench-admin",  # noqa: S106 - a private throwaway server
            summarizer="openai",
            openai_api_key="bench",
            openai_base_url=fake.base_url,
            summary_model=args.model,
            window_size=args.window_size,
            sweep_interval_seconds=0.05,
            log_level="WARNING",
        )
        app = create_app(settings)
        client = app.test_client()
        created = client.post(
            "/admin/tenants",
            json={"id": "bench", "rate_limit": "10000000/minute"},
            headers={"Authorization": "Bearer bench-admin"},
        )
        headers = {"Authorization": f"Bearer {created.json['api_key']}"}
        messages = conversation(args.messages)
        for i in range(0, len(messages), 2):
            body = {"messages": [{"role": r, "content": c} for r, c in messages[i : i + 2]]}
            assert client.post("/sessions/bench/memory", json=body, headers=headers).status_code == 200
            if paced:  # a live chat: the fold finishes before the next turn arrives
                settle(client, headers, args.window_size)
        state = settle(client, headers, args.window_size)
        app.extensions["recollect"].shutdown(wait=True)

        folded = args.messages - len(state["messages"])
        lines = [Line(r, c) for r, c in messages]
        conversation_tokens = sum(tokens.count_tokens(line.render(), args.model) for line in lines[:folded])
        incremental = fake.total_prompt_tokens

        # Baseline (paced fold points): at each fold, the whole folded history is sent
        # instead of the previous summary plus the new lines.
        baseline = 0
        system = tokens.count_message_tokens("system", DEFAULT_PROMPT, args.model)
        keep = args.window_size // 2
        length, done = 0, 0
        for _ in range(0, len(messages), 2):
            length += 2
            if length > args.window_size:
                done += length - keep
                length = keep
                user = build_user_message(None, [line.render() for line in lines[:done]])
                baseline += 3 + system + tokens.count_message_tokens("user", user, args.model)

        mode = "paced (each fold before the next turn)" if paced else "burst (posted back to back)"
        print(f"[{mode}]")
        print(
            f"summary_cost: {args.messages} messages, window_size={args.window_size}, "
            f"folded={folded}, conversation tokens (folded part)={conversation_tokens}"
        )
        print(
            f"incremental: llm_calls={fake.chat_completed} prompt_tokens={incremental} "
            f"completion_tokens={fake.total_completion_tokens} "
            f"ratio={incremental / conversation_tokens:.2f} (target <= 1.5)"
        )
        print(
            f"regenerate-from-scratch baseline: prompt_tokens={baseline} "
            f"ratio={baseline / conversation_tokens:.2f}"
        )
        print(f"session tokens reported by GET: {state['tokens']}")
    finally:
        fake.stop()
        redis.stop()
        shutil.rmtree(redis.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
