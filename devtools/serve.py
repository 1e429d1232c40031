"""``make run``: the server on this machine, with a ready-to-use key for a dev tenant.

With ``REDIS_URL`` unset it runs on the embedded in-process store (one process, nothing
persisted), so a newcomer can try the API with nothing installed but Python.
"""

from __future__ import annotations

import logging
import os
import sys

from config import ConfigError, load_settings
from config.logging import ContextFilter


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"recollect: {exc}", file=sys.stderr)
        return 2
    from app import create_app

    app = create_app(settings)
    tenant_id = os.environ.get("RECOLLECT_DEV_TENANT", "dev")
    with app.app_context():
        registry = app.extensions["recollect"].registry
        registry.ensure_tenant(tenant_id)
        key = registry.create_key(tenant_id, label="make run")
    host = os.environ.get("HOST", "127.0.0.1")
    store = "embedded in-process store (not persistent)" if settings.redis_url is None else "Redis"
    print(
        f"\nRecollect on http://{host}:{settings.port}  ({store}, "
        f"summarizer: {settings.effective_summarizer})\n"
        f"Dev tenant {tenant_id!r} API key (shown once):\n\n    {key.api_key}\n\n"
        f"Try:\n    export KEY={key.api_key}\n"
        f"    curl -s -X POST http://{host}:{settings.port}/sessions/demo/memory "
        "-H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' "
        '-d \'{"messages":[{"role":"Human","content":"hello"}]}\'\n'
        f"    curl -s http://{host}:{settings.port}/sessions/demo/memory "
        '-H "Authorization: Bearer $KEY"\n',
        flush=True,
    )
    # The development server logs each raw request line: redact path-scoped keys there too.
    logging.getLogger("werkzeug").addFilter(ContextFilter())
    app.run(host=host, port=settings.port, threaded=True, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
