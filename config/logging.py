"""Log format: JSON lines (python-json-logger, orjson) carrying the request's context.

A context variable holds ``request_id``, ``tenant_id`` and ``key_id`` for the request being
served (set by the app's hooks); the summarizer's pool threads run inside a copy of the
triggering request's context, so their lines carry it too. gunicorn's own logs use the same
formatter through ``logconfig_dict`` (``config/gunicorn.conf.py``). This module imports
nothing of the app, so gunicorn's master can load it.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.orjson import OrjsonFormatter

# Per record, logging would walk the stack for the caller's file and line and look up the
# thread's and process's names; no line of ours carries them (the logging HOWTO's
# "Optimization" section names these switches). A request line costs less without.
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False

log_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "recollect_log_context", default=MappingProxyType({})
)

_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


# A path-scoped key (api.md §9, app/path_keys.py) in a URI some line quotes, e.g.
# gunicorn's "Error handling request /k/rk_...".
_PATH_KEY = re.compile(r"/k/[^/?#\s\"]*")


def redact_path_keys(text: str) -> str:
    """``text`` with every ``/k/<key>`` segment replaced by ``/k/<redacted>``."""
    return _PATH_KEY.sub("/k/<redacted>", text) if "/k/" in text else text


def _redact(value: object) -> object:
    return redact_path_keys(value) if isinstance(value, str) else value


class ContextFilter(logging.Filter):
    """Adds the request's context to a record, and redacts path-scoped keys in its message
    and positional arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in log_context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        record.msg = _redact(record.msg)
        args = record.args
        if isinstance(args, tuple) and any(isinstance(arg, str) and "/k/" in arg for arg in args):
            record.args = tuple(_redact(arg) for arg in args)
        return True


class RecollectJsonFormatter(OrjsonFormatter):
    """python-json-logger's orjson variant: a request line formats in ~14 µs instead of ~19
    (docs/benchmarks.md); compact JSON, UTF-8 as it is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__(_FIELDS, *args, **kwargs)


def logging_config(level: str, fmt: str = "json", *, gunicorn: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping for the app, plus gunicorn's own loggers when
    ``gunicorn`` (its ``logconfig_dict``; the app must not replace gunicorn's handlers)."""
    # Not propagated under gunicorn: the root logger there has the same handler, and every
    # line would be written twice.
    loggers: dict[str, Any] = {
        "recollect": {"level": level, "handlers": ["stderr"], "propagate": not gunicorn}
    }
    if gunicorn:
        loggers["gunicorn.error"] = {"level": level, "handlers": ["stderr"], "propagate": False}
        loggers["gunicorn.access"] = {"level": "INFO", "handlers": ["stderr"], "propagate": False}
    formatter = (
        {"()": RecollectJsonFormatter}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["context"]}
        },
        "loggers": loggers,
    }
    if gunicorn:
        # gunicorn merges this over its defaults shallowly: its root logger would otherwise
        # keep pointing at a handler this mapping replaced.
        config["root"] = {"level": level, "handlers": ["stderr"]}
    return config


def configure(level: str, fmt: str = "json") -> None:
    logging.config.dictConfig(logging_config(level, fmt))
