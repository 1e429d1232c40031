"""Settings come from the environment once; MotorHead's names work; bad values stop start-up."""

import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.window_size == 12 and settings.port == 8080
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.effective_summarizer == "extractive"


def test_motorhead_aliases(monkeypatch):
    monkeypatch.setenv("MOTORHEAD_MAX_WINDOW_SIZE", "25")
    monkeypatch.setenv("MOTORHEAD_MODEL", "gpt-4")
    monkeypatch.setenv("OPENAI_API_BASE", "http://vllm:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = load_settings()
    assert settings.window_size == 25 and settings.summary_model == "gpt-4"
    assert settings.openai_base_url == "http://vllm:8000/v1"
    assert settings.effective_summarizer == "openai"


def test_recollect_names_win_over_aliases(monkeypatch):
    monkeypatch.setenv("MOTORHEAD_MAX_WINDOW_SIZE", "25")
    monkeypatch.setenv("RECOLLECT_WINDOW_SIZE", "30")
    assert load_settings().window_size == 30


def test_azure_needs_all_four_variables(monkeypatch):
    for name in ("AZURE_API_KEY", "AZURE_API_BASE", "AZURE_DEPLOYMENT_ID"):
        monkeypatch.setenv(name, "x")
    assert not load_settings().azure_configured
    monkeypatch.setenv("AZURE_DEPLOYMENT_ID_ADA", "ada")
    settings = load_settings()
    assert settings.azure_configured and settings.effective_summarizer == "openai"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECOLLECT_WINDOW_SIZE", "abc"),
        ("MOTORHEAD_MAX_WINDOW_SIZE", "1"),
        ("PORT", "70000"),
        ("RECOLLECT_SUMMARIZER", "magic"),
        ("RECOLLECT_OPEN_TENANT", "Not A Slug"),
    ],
)
def test_a_bad_value_names_the_variable_in_one_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    # The variable the operator actually set, even when it is one of MotorHead's aliases.
    assert name in message


def test_revocation_delay_cannot_be_configured_above_one_second(monkeypatch):
    monkeypatch.setenv("RECOLLECT_AUTH_CACHE_SECONDS", "5")
    with pytest.raises(ConfigError, match="RECOLLECT_AUTH_CACHE_SECONDS"):
        load_settings()


def test_secrets_are_never_echoed():
    settings = load_settings(admin_token="very-secret", openai_api_key="sk-secret")
    assert "very-secret" not in repr(settings) and "sk-secret" not in repr(settings)
    assert settings.admin_token.get_secret_value() == "very-secret"


def test_the_server_refuses_to_start_with_one_line_on_stderr():
    env = {"PATH": "/usr/bin:/bin", "RECOLLECT_WINDOW_SIZE": "abc"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RECOLLECT_WINDOW_SIZE" in lines[0]


def test_more_aliases_and_their_precedence(monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", "http://old:8000/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://new:8000/v1")
    monkeypatch.setenv("RECOLLECT_SUMMARY_MODEL", "mine")
    monkeypatch.setenv("MOTORHEAD_MODEL", "theirs")
    settings = load_settings()
    assert settings.openai_base_url == "http://new:8000/v1"
    assert settings.summary_model == "mine"


def test_an_empty_variable_means_unset(monkeypatch):
    monkeypatch.setenv("RECOLLECT_WINDOW_SIZE", "")
    monkeypatch.setenv("REDIS_URL", "")
    settings = load_settings()
    assert settings.window_size == 12 and settings.redis_url is None


def test_a_config_error_never_echoes_a_secret(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-secret-value")
    monkeypatch.setenv("RECOLLECT_ADMIN_TOKEN", "admin-secret-value")
    monkeypatch.setenv("RECOLLECT_WINDOW_SIZE", "abc")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "secret-value" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(admin_token=987654321)  # not a string: invalid, and still not echoed
    assert "RECOLLECT_ADMIN_TOKEN" in str(caught.value) and "987654321" not in str(caught.value)


def test_the_server_starts_with_a_valid_environment():
    """The contrast to the failing start below: the same import succeeds when the values are good."""
    env = {"PATH": "/usr/bin:/bin", "RECOLLECT_WINDOW_SIZE": "20", "RECOLLECT_ADMIN_TOKEN": "t"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi; print(wsgi.app.name)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "app"


def test_a_failed_start_prints_no_secret_and_no_traceback():
    env = {"PATH": "/usr/bin:/bin", "PORT": "not-a-port", "OPENAI_API_KEY": "sk-live-secret-value"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "PORT" in result.stderr
    assert "Traceback" not in result.stderr and "secret-value" not in result.stderr
