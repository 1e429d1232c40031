"""The deployment files agree with each other and with the app: nginx's template and its
renderer, docker-compose.yml, the Dockerfile, config/gunicorn.conf.py and the settings.
(tests/e2e/test_nginx.py runs the template for real; tests/e2e/test_docker.py builds the
image and runs the compose file.)"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import types

import pytest

from config import load_settings
from tests.e2e.servers import ROOT, load_renderer

render = load_renderer()
TEMPLATE = render.TEMPLATE.read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def defaults() -> dict[str, str]:
    return render.values_from({})


def gunicorn_settings() -> dict:
    """config/gunicorn.conf.py as gunicorn reads it, with no GUNICORN_* overrides."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("GUNICORN_")}
    try:
        return runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    finally:
        os.environ.update(saved)


def nginx_size(value: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


def nginx_seconds(value: str) -> float:
    number = float(re.match(r"[0-9]+", value).group(0))
    return number / 1000 if value.endswith("ms") else number * 60 if value.endswith("m") else number


def compose_service(name: str) -> str:
    """One service's block of docker-compose.yml (no YAML parser in the dependencies)."""
    match = re.search(rf"^  {name}:\n(.*?)(?=^  \S|^\S|\Z)", COMPOSE, re.M | re.S)
    assert match, f"no service {name} in docker-compose.yml"
    return match.group(1)


# --- the renderer ------------------------------------------------------------------------


def test_rendering_fills_placeholders_and_keeps_nginx_variables():
    text = render.render(TEMPLATE, {**defaults(), "UPSTREAM": "10.1.2.3:8000", "LISTEN_PORT": "8081"})
    assert "server 10.1.2.3:8000;" in text
    assert "listen 8081 default_server;" in text
    for variable in ("$request_id", "$http_x_request_id", "$host", "$proxy_add_x_forwarded_for", "$scheme"):
        assert variable in text
    assert "${" not in text


def test_the_renderer_agrees_with_envsubst_as_the_nginx_image_runs_it():
    envsubst = shutil.which("envsubst")
    if envsubst is None:
        pytest.skip("envsubst (Debian package gettext-base) is not installed")
    values = {**defaults(), "UPSTREAM": "app:9000"}
    names = " ".join(f"${{{name}}}" for name in render.PLACEHOLDERS)
    # The image passes every *set* variable the filter selects; a container has others too.
    env = {**values, "PATH": os.environ["PATH"], "HOSTNAME": "nginx-1", "host": "not-nginx"}
    out = subprocess.run([envsubst, names], input=TEMPLATE, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == render.render(TEMPLATE, values)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SERVER_NAME", "example.com; return 200"),  # would inject a directive
        ("CLIENT_MAX_BODY_SIZE", "1 m"),
        ("UPSTREAM", "app"),  # no port
        ("PER_IP_RATE", "20"),  # nginx needs r/s or r/m
    ],
)
def test_a_malformed_value_is_refused_with_its_name(name, value):
    with pytest.raises(render.RenderError, match=name):
        render.render(TEMPLATE, {**defaults(), name: value})


def test_an_unknown_placeholder_is_refused():
    with pytest.raises(render.RenderError, match="TYPO"):
        render.render(TEMPLATE + "\n# ${TYPO}\n", defaults())
    with pytest.raises(render.RenderError, match="TYPO"):
        render.values_from({}, {"TYPO": "1"})


def test_the_command_line_writes_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM", "gunicorn.internal:8080")
    out = tmp_path / "recollect.conf"
    assert render.main(["-o", str(out), "--set", "LISTEN_PORT=8443"]) == 0
    text = out.read_text()
    assert "server gunicorn.internal:8080;" in text and "listen 8443;" in text
    assert render.main(["--set", "LISTEN_PORT=http"]) == 2


# --- nginx, gunicorn and the app agree ---------------------------------------------------


def test_nginx_refuses_exactly_what_the_app_would():
    assert nginx_size(defaults()["CLIENT_MAX_BODY_SIZE"]) == load_settings().max_body_bytes


@pytest.mark.parametrize(("accesslog", "enabled"), [("off", False), ("-", True), ("/tmp/access.log", True)])
def test_gunicorn_writes_an_access_log_only_when_asked(monkeypatch, accesslog, enabled):
    """gunicorn's own logger turns the access log on whenever logconfig_dict is set (and then
    formats every line); with GUNICORN_ACCESSLOG=off ours keeps it off."""
    from gunicorn import glogging
    from gunicorn.config import Config

    monkeypatch.setenv("GUNICORN_ACCESSLOG", accesslog)
    conf = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    cfg = Config()
    for name in ("accesslog", "logconfig_dict", "logger_class"):
        cfg.set(name, conf[name])
    logger = types.SimpleNamespace(cfg=cfg)
    assert cfg.logger_class._compute_access_log_enabled(logger) is enabled
    assert glogging.Logger._compute_access_log_enabled(logger) is True  # what it replaces


def test_timeouts_nest_nginx_above_gunicorn():
    gunicorn = gunicorn_settings()
    read_timeout = nginx_seconds(defaults()["PROXY_READ_TIMEOUT"])
    assert read_timeout > gunicorn["graceful_timeout"] > gunicorn["timeout"]
    # nginx drops an idle upstream connection before gunicorn closes it.
    rendered = render.render(TEMPLATE, defaults())
    upstream = re.search(r"upstream recollect_app \{(.*?)\}", rendered, re.S).group(1)
    keepalive = re.search(r"keepalive_timeout (\w+);", upstream).group(1)
    assert nginx_seconds(keepalive) < gunicorn["keepalive"]


def test_request_ids_nginx_keeps_are_those_the_app_keeps():
    from app.request_log import REQUEST_ID_RE

    pattern = re.search(r'"~(\^\[A-Za-z0-9._:-\]\{1,128\}\$)"', TEMPLATE).group(1)
    assert pattern == REQUEST_ID_RE.pattern


# --- docker-compose.yml and the Dockerfile -----------------------------------------------


def test_compose_sets_every_placeholder_and_the_image_substitutes_only_those():
    nginx = compose_service("nginx")
    for name in render.PLACEHOLDERS:
        assert re.search(rf"^      {name}: \S", nginx, re.M), f"compose does not set {name}"
    # Compose turns $$ into $; the image matches variable names against this with awk.
    selected = re.search(r'NGINX_ENVSUBST_FILTER: "(.*)"', nginx).group(1).replace("$$", "$")
    image_env = ["PATH", "HOSTNAME", "HOME", "NGINX_VERSION", "PKG_RELEASE", "NGINX_ENVSUBST_FILTER"]
    chosen = [name for name in [*render.PLACEHOLDERS, *image_env] if re.search(selected, name)]
    assert chosen == list(render.PLACEHOLDERS)
    assert "./nginx/recollect.conf.template:/etc/nginx/templates/default.conf.template:ro" in nginx


def test_compose_values_match_the_tested_defaults():
    nginx = compose_service("nginx")
    for name in ("CLIENT_MAX_BODY_SIZE", "PROXY_READ_TIMEOUT", "PER_IP_RATE", "PER_IP_BURST"):
        value = re.search(rf"^      {name}: \"?([^\"\n]+)\"?$", nginx, re.M).group(1)
        assert value == defaults()[name], name


def test_compose_runs_the_app_behind_one_proxy_with_a_durable_redis():
    app = compose_service("app")
    assert 'RECOLLECT_PROXY_COUNT: "1"' in app
    assert "REDIS_URL: redis://redis:6379/0" in app
    # docker stop must wait out gunicorn's graceful stop.
    grace = re.search(r"stop_grace_period: (\w+)", app).group(1)
    assert nginx_seconds(grace) > gunicorn_settings()["graceful_timeout"]
    redis_service = compose_service("redis")
    flags = (("--appendonly", '"yes"'), ("--appendfsync", "everysec"), ("--maxmemory-policy", "noeviction"))
    for flag, value in flags:
        assert re.search(rf"- {flag}\n\s+- {value}\n", redis_service), flag
    assert "redis-data:/data" in redis_service


def test_the_image_runs_gunicorn_as_a_non_root_user_with_a_health_check():
    runtime = DOCKERFILE.split("\nFROM ")[-1]  # the last stage is what runs
    assert re.search(r"^USER recollect$", runtime, re.M)
    assert 'ENTRYPOINT ["gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"]' in runtime
    assert "/healthz" in re.search(r"HEALTHCHECK .*\n.*", runtime).group(0)
    assert "get_encoding('cl100k_base')" in runtime  # the tokenizer data is checked at build


def test_the_build_context_holds_everything_the_dockerfile_copies():
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source.rstrip("/").removeprefix("./")
        for line in DOCKERFILE.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    }
    assert copied and copied <= allowed, copied - allowed


def test_a_worker_freezes_what_it_loaded_out_of_the_garbage_collectors_reach():
    """A full collection over the imports' ~110,000 objects held the GIL ~25-40 ms: the
    POST p99 tail. post_worker_init freezes them once the worker is warm."""
    import gc

    gc.unfreeze()
    try:
        gunicorn_settings()["post_worker_init"](types.SimpleNamespace(wsgi=None))
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_gunicorn_binds_loopback_by_default_and_the_image_opens_it():
    assert gunicorn_settings()["bind"] == "127.0.0.1:8080"
    assert re.search(r"GUNICORN_HOST=0\.0\.0\.0", (ROOT / "Dockerfile").read_text())


def test_trusting_a_proxy_on_a_public_bind_is_warned_at_start(monkeypatch):
    when_ready = gunicorn_settings()["when_ready"]
    warnings: list[str] = []

    class Log:
        def warning(self, message: str, *args: object) -> None:
            warnings.append(message % args)

    def server(*binds: str) -> object:
        return type("Server", (), {"cfg": type("Cfg", (), {"bind": list(binds)})(), "log": Log()})()

    monkeypatch.setenv("RECOLLECT_PROXY_COUNT", "1")
    when_ready(server("127.0.0.1:8080", "unix:/run/recollect.sock", "[::1]:8080"))
    assert warnings == []
    when_ready(server("0.0.0.0:8080"))
    assert len(warnings) == 1 and "0.0.0.0:8080" in warnings[0]
    monkeypatch.setenv("RECOLLECT_PROXY_COUNT", "0")
    when_ready(server("0.0.0.0:8080"))
    assert len(warnings) == 1
