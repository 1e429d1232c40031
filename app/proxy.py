"""Trust ``X-Forwarded-*`` only from the proxies the operator declared.

Behind nginx, every request reaches gunicorn from nginx's address: without this the app
would see one client, so the per-address limit on failed authentications would block
everyone at once. Trusting the headers blindly is worse: any client could name its own
address in ``X-Forwarded-For`` and dodge that limit. ``ProxyFix`` with an explicit count
takes the entry that the last ``count`` proxies appended — nginx's, which a client cannot
forge — and ignores everything to its left.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def wrap(app: Flask, count: int) -> None:
    """Apply ``ProxyFix`` for ``count`` proxies (``RECOLLECT_PROXY_COUNT``); 0 trusts none.

    Only ``app.wsgi_app`` is wrapped, so the Flask object stays what gunicorn loads (its
    hooks find the app's resources on it).
    """
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
