"""Path-scoped keys (api.md §9): ``/k/<api_key>/...`` serves every tenant route.

LangChain's, Flowise's and n8n's MotorHead clients send no credentials to a self-hosted
URL, but they keep whatever path the user gives them. This middleware takes the key out of
the path before anything else sees it: routing, the request line the app logs, metric
labels (the route template) and gunicorn's access line (``%(U)s`` is ``PATH_INFO``, which
is rewritten here) all see ``/sessions/...``. The raw request line, which gunicorn keeps
for custom log formats and its own error lines, is redacted in the WSGI environ, and
``config.logging`` redacts ``/k/...`` in any line that still carries one.

The key is checked by ``app.auth`` exactly like a bearer key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from config.logging import redact_path_keys

PREFIX = "/k/"
ENVIRON_KEY = "recollect.path_key"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PathKeyMiddleware:
    """Moves the key from ``PATH_INFO`` into the environ. Disabled, it still takes the key
    out of the path (the request answers 404), so a client that sends one anyway does not
    put it into the access log."""

    def __init__(self, app: WSGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            key, slash, rest = path[len(PREFIX) :].partition("/")
            if self.enabled and slash and key:
                environ["PATH_INFO"] = "/" + rest
                environ[ENVIRON_KEY] = key
            else:
                # "/k/<key>" alone, an empty key, or path keys off: no route, 404.
                environ["PATH_INFO"] = PREFIX
            for name in ("RAW_URI", "REQUEST_URI"):
                if name in environ:
                    environ[name] = redact_path_keys(environ[name])
        return self.app(environ, start_response)


def wrap(app: Flask, enabled: bool) -> None:
    """Install the middleware on ``app.wsgi_app`` (``RECOLLECT_PATH_KEYS``, on by default)."""
    app.wsgi_app = PathKeyMiddleware(app.wsgi_app, enabled)  # type: ignore[method-assign]
