"""The API's own description: ``/openapi.json`` and a browsable ``/docs`` page.

The page is Swagger UI 5 (OpenAPI 3.1 capable) served from the installed ``swagger-ui-py``
wheel — it works offline and behind firewalls; no CDN is ever referenced.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from flask import Blueprint, Response, current_app, send_from_directory

from app.http import json_response
from app.openapi import build_spec, documented

ASSETS = Path(swagger_ui.__file__).parent / "static"

bp = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Recollect API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


@bp.get("/openapi.json")
@documented("This document (OpenAPI 3.1)", tag="operations", ok=(200, None), auth="none")
def openapi() -> Response:
    spec = current_app.extensions.get("recollect_openapi")
    if spec is None:
        spec = current_app.extensions["recollect_openapi"] = build_spec(current_app)
    return json_response(spec)


@bp.get("/docs", strict_slashes=False)  # "/docs/" too, without a redirect
def page() -> Response:
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/assets/<path:name>")
def assets(name: str) -> Response:
    return send_from_directory(ASSETS, name, max_age=86400)
