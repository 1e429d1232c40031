"""Configuration from flags and the environment: what is required, what is refused, and
that secrets never appear in what the command prints."""

from __future__ import annotations

import pytest

from recollect_mcp.config import Config, load_config, redact

URL = "http://127.0.0.1:8080"


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]) -> str:
    """The one error line of a configuration that must not start."""
    with pytest.raises(SystemExit) as exit_:
        load_config(argv, env)
    assert exit_.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_reads_the_environment() -> None:
    config = load_config(
        [], {"RECOLLECT_URL": URL + "/", "RECOLLECT_API_KEY": "rk_x", "RECOLLECT_TIMEOUT": "2.5"}
    )
    assert (config.url, config.api_key, config.timeout, config.max_retries) == (URL, "rk_x", 2.5, None)
    assert (config.transport, config.host, config.port, config.path) == ("stdio", "127.0.0.1", 8000, "/mcp")


def test_flags_override_the_environment() -> None:
    config = load_config(
        ["--url", "https://memory.example.com", "--transport", "streamable-http", "--port", "9100"],
        {"RECOLLECT_URL": URL, "RECOLLECT_API_KEY": "rk_x", "RECOLLECT_MCP_PORT": "9000"},
    )
    assert (config.url, config.transport, config.port) == (
        "https://memory.example.com",
        "streamable-http",
        9100,
    )


def test_a_path_scoped_key_needs_no_api_key() -> None:
    assert load_config([], {"RECOLLECT_URL": URL + "/k/rk_abc"}).api_key is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "RECOLLECT_URL"),
        ({"RECOLLECT_URL": "ftp://host", "RECOLLECT_API_KEY": "k"}, "RECOLLECT_URL"),
        ({"RECOLLECT_URL": URL}, "RECOLLECT_API_KEY"),
        (
            {"RECOLLECT_URL": URL, "RECOLLECT_API_KEY": "k", "RECOLLECT_MCP_TRANSPORT": "sse"},
            "RECOLLECT_MCP_TRANSPORT",
        ),
        ({"RECOLLECT_URL": URL, "RECOLLECT_API_KEY": "k", "RECOLLECT_TIMEOUT": "0"}, "RECOLLECT_TIMEOUT"),
    ],
)
def test_a_bad_setting_stops_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], names: str
) -> None:
    assert names in refused(capsys, [], env)


def test_a_non_loopback_http_address_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"RECOLLECT_URL": URL + "/k/rk_secret"}
    everywhere = ["--transport", "streamable-http", "--host", "0.0.0.0"]  # noqa: S104 - the case refused
    assert "RECOLLECT_MCP_TOKEN" in refused(capsys, everywhere, env)
    assert load_config(everywhere, env | {"RECOLLECT_MCP_TOKEN": "t"}).http_token == "t"


def test_secrets_are_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert redact(URL + "/k/rk_secret/motorhead") == URL + "/k/***/motorhead"
    line = refused(capsys, [], {"RECOLLECT_URL": "ftp://h/k/rk_secret"})
    assert "rk_secret" not in line
    config: Config = load_config(
        [], {"RECOLLECT_URL": URL + "/k/rk_secret", "RECOLLECT_MCP_TOKEN": "tok_secret"}
    )
    assert "rk_secret" not in repr(config) and "tok_secret" not in repr(config)
