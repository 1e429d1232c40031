"""The window policy decides which messages leave the window — a pure function."""

from app.domain.memory.window import overflows, plan_fold


def window(n: int, tokens: int = 10) -> list[dict]:
    return [{"id": i, "role": "Human", "content": f"m{i}", "token_count": tokens} for i in range(1, n + 1)]


def test_within_policy_nothing_is_folded():
    assert plan_fold(window(12), window_size=12, window_tokens=None) is None


def test_overflow_folds_oldest_until_half_the_window_remains():
    plan = plan_fold(window(13), window_size=12, window_tokens=None)
    assert plan is not None
    assert plan.ids == [1, 2, 3, 4, 5, 6, 7]  # 13 - 12 // 2 = 7 oldest, in order


def test_a_large_backlog_is_folded_in_one_plan():
    plan = plan_fold(window(100), window_size=12, window_tokens=None)
    assert plan is not None and plan.ids == list(range(1, 95))


def test_token_budget_overflow_folds_until_half_the_budget():
    plan = plan_fold(window(6, tokens=100), window_size=12, window_tokens=300)
    assert plan is not None
    # 600 tokens > 300: keep at most 150 tokens -> only the newest message stays.
    assert plan.ids == [1, 2, 3, 4, 5]
    assert plan.tokens == 500


def test_the_newest_message_always_stays():
    plan = plan_fold(window(3, tokens=10_000), window_size=12, window_tokens=100)
    assert plan is not None and plan.ids == [1, 2]


def test_overflows_by_count_or_tokens():
    assert overflows(13, 0, window_size=12, window_tokens=None)
    assert not overflows(12, 10**6, window_size=12, window_tokens=None)
    assert overflows(2, 101, window_size=12, window_tokens=100)
