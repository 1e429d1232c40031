"""gunicorn settings for Recollect: ``gunicorn -c config/gunicorn.conf.py wsgi:app``.

gthread workers: a request mostly waits on Redis, and the summarizer's LLM calls run in a
per-process pool off the request path, so threads give concurrency cheaply. Every value
can be overridden from the environment.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import socket
import sys

from gunicorn import glogging


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


wsgi_app = "wsgi:app"
# Loopback unless told otherwise: nginx is the supported edge (a directly exposed gunicorn
# is stalled by a few dozen idle half-sent requests, docs/deploy.md). Containers set
# GUNICORN_HOST=0.0.0.0, their network namespace being the boundary.
_host = os.environ.get("GUNICORN_HOST", "127.0.0.1")
bind = os.environ.get("GUNICORN_BIND", f"{_host}:{os.environ.get('PORT', '8080')}")
# Each worker listens on a socket of its own beside the master's (SO_REUSEPORT) and the
# kernel spreads new connections across them. With the master's socket alone, whichever
# worker woke first could take a whole burst of connections (wrk's 32, nginx's keep-alive
# pool) and leave the others idle: one core used of two. config/gunicorn_worker.py says how
# (GUNICORN_REUSE_PORT=0 turns it off). gunicorn's own reuse_port stays off: it binds per
# worker at the wrong moments. Another server of the same user could join the port:
# on_starting refuses to start then.
worker_class = "config.gunicorn_worker.OwnSocketThreadWorker"
workers = _int("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 12))
threads = _int("GUNICORN_THREADS", 8)
# Sockets, threads and clients must be made per worker, after the fork.
preload_app = False
# Under gthread this only catches a hung process, not a slow request.
timeout = _int("GUNICORN_TIMEOUT", 60)
# Long enough for a running summarization (worst LLM call with its retries) to commit.
_llm_worst = _float("RECOLLECT_LLM_TIMEOUT_SECONDS", 30) * (_int("RECOLLECT_LLM_MAX_RETRIES", 1) + 1)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", int(_llm_worst) + 15)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# A leak guard, not a habit: a new worker costs about a second of CPU (importing the app
# alone measured 0.9 s), an eighth of the ~7.5 s of CPU that 5,000 requests cost a worker.
max_requests = _int("GUNICORN_MAX_REQUESTS", 100_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 10_000)
# The control socket (on by default since 25.1) exposes shutdown to the same uid and
# fails on read-only homes; we do not use it.
control_socket_disable = True
if os.path.isdir("/dev/shm"):  # noqa: S108 - memory-backed heartbeat file
    worker_tmp_dir = "/dev/shm"  # noqa: S108
# One line per request, the app's (app/request_log.py): it names the route template rather
# than the path (session ids may be personal data), the tenant, the key id, the status, the
# latency and the request id. gunicorn's access line would repeat it with the raw path; set
# GUNICORN_ACCESSLOG=- (stderr) or a file to have it as well.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "off")
if accesslog.lower() in ("", "off", "none"):
    accesslog = None
# %(U)s is the path without the query string: nothing secret is ever in a query, but a
# token pasted there by mistake must not reach the log either.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms pid=%(p)s rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("RECOLLECT_LOG_LEVEL", "info").lower()
# gunicorn's own lines in the app's format (JSON lines by default).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from config.logging import logging_config  # noqa: E402 - needs the path above

logconfig_dict = logging_config(
    loglevel.upper(), os.environ.get("RECOLLECT_LOG_FORMAT", "json"), gunicorn=True
)


class _Logger(glogging.Logger):
    """gunicorn enables its access log whenever ``logconfig_dict`` is set, even with
    ``accesslog`` unset, and then builds every line's atoms before the level filter could
    drop them (a visible share of a worker's CPU on a GET). Here ``accesslog`` alone
    decides."""

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)


logger_class = _Logger
if accesslog not in ("-", None):
    # An access log file (the e2e tests read it) instead of stderr.
    logconfig_dict["handlers"]["access_file"] = {
        "class": "logging.FileHandler",
        "filename": accesslog,
        "formatter": "default",
        "filters": ["context"],
    }
    logconfig_dict["loggers"]["gunicorn.access"]["handlers"] = ["access_file"]

# Prometheus multiprocess mode: every worker writes its values to files in one directory,
# which must be set before any worker imports prometheus_client and wiped at start.
METRICS = os.environ.get("RECOLLECT_METRICS", "").lower() in ("1", "true", "yes")
if METRICS:
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        "/dev/shm/recollect-prometheus" if os.path.isdir("/dev/shm") else "/tmp/recollect-prometheus",  # noqa: S108
    )


def _public(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    return not (address.startswith("unix:") or host in ("127.0.0.1", "localhost", "::1"))


def when_ready(server) -> None:  # noqa: ANN001
    proxies = os.environ.get("RECOLLECT_PROXY_COUNT", "0")
    public = [address for address in server.cfg.bind if _public(address)]
    if proxies not in ("", "0") and public:
        server.log.warning(
            "RECOLLECT_PROXY_COUNT=%s trusts X-Forwarded-For, but gunicorn listens on %s: a client "
            "that reaches it directly chooses its own address (and so escapes the per-address "
            "limits). Safe only if that port is reachable from the proxy alone (e.g. an "
            "unpublished container port).",
            proxies,
            ", ".join(public),
        )


def _listening(address: str) -> bool:
    """Whether something accepts connections at ``host:port`` already."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def on_starting(server) -> None:  # noqa: ANN001
    from config.gunicorn_worker import reuse_port_sockets, socket_per_worker

    if socket_per_worker(server.cfg.bind):
        # With SO_REUSEPORT a second server of the same user would share the port silently,
        # each taking part of the traffic, instead of failing to bind.
        taken = [address for address in server.cfg.bind if _listening(address)]
        if taken:
            server.log.error("Address already in use: %s (another server listens there)", ", ".join(taken))
            sys.exit(1)
        # The master's socket, in the SO_REUSEPORT group the workers' own sockets join; the
        # arbiter keeps it, since it is already made.
        server.LISTENERS = reuse_port_sockets(server.cfg, server.log)
    if METRICS:
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker) -> None:  # noqa: ANN001
    if METRICS:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _resources(worker):  # noqa: ANN001, ANN202 - gunicorn's objects
    app = getattr(worker, "wsgi", None)
    # Unwrap middleware (e.g. ProxyFix) down to the Flask app.
    while app is not None and not hasattr(app, "extensions"):
        app = getattr(app, "app", None) or getattr(app, "wsgi_app", None)
    return app.extensions.get("recollect") if app is not None else None


def post_worker_init(worker) -> None:  # noqa: ANN001
    """In each worker, after the fork and the app import: warm the tokenizer, start the
    summarization pool and sweeper, then move everything loaded so far out of the cyclic
    garbage collector's reach."""
    from app.domain import tokens

    tokens.warm_up()
    resources = _resources(worker)
    if resources is not None:
        resources.start_background_work()
    # The imports (Flask, openai, pydantic, prometheus-client, tiktoken ...) leave ~110,000
    # tracked objects that live as long as the worker. Every full collection walked them
    # all: ~25 ms with the GIL held, stalling every in-flight request — the POST p99 tail
    # (docs/benchmarks.md). Frozen, a full collection only walks what requests allocate.
    gc.freeze()


def worker_exit(server, worker) -> None:  # noqa: ANN001
    """Let a running summarization commit; queued ones go back to the due set."""
    resources = _resources(worker)
    if resources is not None:
        resources.shutdown(wait=True)
