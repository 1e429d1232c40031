"""Tenant policies: validated overrides, laid over the configured defaults field by field."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from app.domain.errors import InvalidField
from app.domain.tenancy.policy import (
    MAX_LIMIT_AMOUNT,
    POLICY_FIELDS,
    EffectivePolicy,
    Policy,
    PolicyDefaults,
    policy_from_fields,
    validate_rate_limit,
)

TEN_YEARS = 10 * 365 * 86_400


@pytest.fixture
def custom_defaults(defaults) -> PolicyDefaults:
    """The shipped defaults with every optional or zero default given a value, so overrides show."""
    return PolicyDefaults(
        **defaults.to_dict()
        | {
            "rate_limit": "100/minute",
            "session_ttl_seconds": 3_600,
            "window_size": 12,
            "window_tokens": 4_000,
            "max_sessions": 50,
            "summary_model": "default-model",
            "summary_prompt": "Summarize.",
            "summary_token_budget_daily": 10_000,
            "long_term_memory": True,
        }
    )


# --- rate limit strings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "10/minute",
        "600/minute;30/second",
        "5/hour;100/day",
        "10 per minute",
        "10/minute, 5/second",
        "10/2 minutes",
        "1/second",
        "1/366 days",
        "1/12 months",
        f"{MAX_LIMIT_AMOUNT}/second",
    ],
)
def test_a_valid_rate_limit_string_is_returned_unchanged(value):
    assert validate_rate_limit(value) == value


@pytest.mark.parametrize(
    "value", ["", " ", "abc", "10/fortnight", "10/minute;", "-1/second", "10/minute;abc", "minute/10"]
)
def test_a_string_that_is_not_a_rate_limit_is_rejected_with_an_example(value):
    with pytest.raises(ValueError, match=r"not a rate limit string \(e\.g\. '600/minute;30/second'\)"):
        validate_rate_limit(value)


@pytest.mark.parametrize(
    "value",
    [
        "0/second",
        f"{MAX_LIMIT_AMOUNT + 1}/second",
        "1/367 days",
        "1/13 months",
        "1/2 years",
    ],
)
def test_a_limit_with_no_allowance_too_large_an_amount_or_a_window_over_a_year_is_rejected(value):
    with pytest.raises(ValueError, match=f"each limit must allow 1-{MAX_LIMIT_AMOUNT} requests"):
        validate_rate_limit(value)


def test_one_out_of_range_limit_rejects_the_whole_string():
    with pytest.raises(ValueError, match="each limit must allow"):
        validate_rate_limit("10/second;0/minute;100/hour")


# --- the Policy model ----------------------------------------------------------------------


def test_an_empty_policy_overrides_nothing():
    policy = Policy()
    assert all(getattr(policy, name) is None for name in POLICY_FIELDS)
    assert policy.model_dump(exclude_none=True) == {}


def test_policy_fields_are_exactly_the_effective_policys_fields_in_the_same_order():
    assert tuple(f.name for f in dataclasses.fields(EffectivePolicy)) == POLICY_FIELDS
    assert "rate_limit" in POLICY_FIELDS and "summary_token_budget_daily" in POLICY_FIELDS


def test_a_policy_refuses_fields_it_does_not_know():
    with pytest.raises(ValidationError, match="extra"):
        Policy.model_validate({"rate_limit": "10/minute", "max_tenants": 3})


# (field, smallest accepted, largest accepted or None when unbounded)
BOUNDS = [
    ("session_ttl_seconds", 0, TEN_YEARS),
    ("window_size", 2, 1000),
    ("window_tokens", 64, 1_000_000),
    ("max_message_bytes", 64, 16 * 1024 * 1024),
    ("max_sessions", 1, None),
    ("summary_token_budget_daily", 0, None),
]


@pytest.mark.parametrize(("field", "lowest", "highest"), BOUNDS)
def test_numeric_policy_fields_accept_their_bounds(field, lowest, highest):
    assert getattr(Policy(**{field: lowest}), field) == lowest
    if highest is not None:
        assert getattr(Policy(**{field: highest}), field) == highest
    else:
        assert getattr(Policy(**{field: 10**12}), field) == 10**12, "no upper bound"


@pytest.mark.parametrize(("field", "lowest", "highest"), BOUNDS)
def test_numeric_policy_fields_reject_values_outside_their_bounds(field, lowest, highest):
    with pytest.raises(ValidationError, match=field):
        Policy(**{field: lowest - 1})
    if highest is not None:
        with pytest.raises(ValidationError, match=field):
            Policy(**{field: highest + 1})


@pytest.mark.parametrize(("field", "longest"), [("summary_model", 200), ("summary_prompt", 8000)])
def test_text_policy_fields_must_be_non_empty_and_not_too_long(field, longest):
    assert getattr(Policy(**{field: "x" * longest}), field) == "x" * longest
    for bad in ("", "x" * (longest + 1)):
        with pytest.raises(ValidationError, match=field):
            Policy(**{field: bad})


def test_a_policy_validates_its_rate_limit_string():
    assert Policy(rate_limit="600/minute;30/second").rate_limit == "600/minute;30/second"
    with pytest.raises(ValidationError, match="not a rate limit string"):
        Policy(rate_limit="often")
    with pytest.raises(ValidationError, match="each limit must allow"):
        Policy(rate_limit="0/minute")


def test_a_valid_rate_limit_longer_than_200_characters_is_still_refused():
    long_limit = ";".join(["1/second"] * 30)
    assert len(long_limit) > 200
    assert validate_rate_limit(long_limit) == long_limit
    with pytest.raises(ValidationError, match="at most 200 characters"):
        Policy(rate_limit=long_limit)


def test_none_is_accepted_for_every_field_and_means_use_the_default():
    policy = Policy.model_validate(dict.fromkeys(POLICY_FIELDS))
    assert policy == Policy()


# --- policy_from_fields ---------------------------------------------------------------------


def test_policy_from_fields_takes_only_the_policy_fields_of_a_request():
    policy = policy_from_fields({"id": "acme", "name": "Acme", "window_size": 8, "rate_limit": "5/second"})
    assert policy == Policy(window_size=8, rate_limit="5/second")


def test_policy_from_fields_silently_ignores_unknown_fields():
    assert policy_from_fields({"max_tenants": 3, "bogus": "x"}) == Policy()


def test_an_invalid_policy_field_is_reported_as_invalid_field_naming_the_field():
    with pytest.raises(InvalidField) as caught:
        policy_from_fields({"window_size": 1})
    assert caught.value.code == "invalid_field"
    assert caught.value.message == "window_size: Input should be greater than or equal to 2"


def test_an_invalid_rate_limit_is_reported_with_the_validators_explanation():
    with pytest.raises(InvalidField) as caught:
        policy_from_fields({"rate_limit": "lots"})
    assert caught.value.message.startswith("rate_limit: ")
    assert "not a rate limit string" in caught.value.message


def test_with_several_invalid_fields_only_the_first_is_reported():
    with pytest.raises(InvalidField) as caught:
        policy_from_fields({"window_size": 1, "max_sessions": 0})
    assert caught.value.message.startswith("window_size: ")
    assert "max_sessions" not in caught.value.message


def test_a_value_of_the_wrong_type_is_an_invalid_field():
    with pytest.raises(InvalidField, match="max_sessions: Input should be a valid integer"):
        policy_from_fields({"max_sessions": "many"})


# --- resolving against the defaults ------------------------------------------------------------


def test_a_tenant_without_overrides_runs_under_the_defaults(custom_defaults):
    effective = custom_defaults.resolve(Policy())
    assert type(effective) is EffectivePolicy
    assert effective.to_dict() == custom_defaults.to_dict()


def test_each_override_replaces_only_its_own_default(custom_defaults):
    effective = custom_defaults.resolve(Policy(window_size=4, summary_model="small"))
    assert effective.window_size == 4
    assert effective.summary_model == "small"
    untouched = set(POLICY_FIELDS) - {"window_size", "summary_model"}
    assert {n: getattr(effective, n) for n in untouched} == {
        n: getattr(custom_defaults, n) for n in untouched
    }


def test_falsy_overrides_such_as_zero_or_false_still_win_over_the_default(custom_defaults):
    effective = custom_defaults.resolve(
        Policy(session_ttl_seconds=0, summary_token_budget_daily=0, long_term_memory=False)
    )
    assert effective.session_ttl_seconds == 0
    assert effective.summary_token_budget_daily == 0
    assert effective.long_term_memory is False


def test_resolving_leaves_the_defaults_unchanged(custom_defaults):
    before = custom_defaults.to_dict()
    custom_defaults.resolve(Policy(window_size=4, rate_limit="1/second"))
    assert custom_defaults.to_dict() == before


def test_to_dict_lists_every_policy_field_in_order(custom_defaults):
    as_dict = custom_defaults.resolve(Policy(max_sessions=3)).to_dict()
    assert tuple(as_dict) == POLICY_FIELDS
    assert as_dict["max_sessions"] == 3
    assert as_dict["summary_prompt"] == "Summarize."


def test_an_effective_policy_cannot_be_changed_in_place(custom_defaults):
    effective = custom_defaults.resolve(Policy())
    with pytest.raises(dataclasses.FrozenInstanceError):
        effective.window_size = 99  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom_defaults.window_size = 99  # type: ignore[misc]


def test_the_shipped_defaults_leave_the_optional_limits_unset(defaults):
    assert defaults.rate_limit == "1200/minute;60/second"
    assert defaults.max_sessions is None
    assert defaults.summary_prompt is None
    assert defaults.summary_token_budget_daily == 0, "0 means no daily budget"
    assert validate_rate_limit(defaults.rate_limit) == defaults.rate_limit
