#!/usr/bin/env python3
"""Render ``recollect.conf.template`` into an nginx config file.

Only Recollect's own placeholders (``PLACEHOLDERS``) are replaced; every other ``$name`` —
nginx's variables such as ``$host`` or ``$request_id`` — is left alone. That is exactly what
the official nginx image does at container start when ``NGINX_ENVSUBST_FILTER`` names the
same variables (its ``envsubst`` gets the list of names), so one template serves both:

    python3 nginx/render.py --set UPSTREAM=127.0.0.1:8080 -o /etc/nginx/conf.d/recollect.conf

Values come from the defaults below, then the environment, then ``--set NAME=VALUE``. Each
value is checked against a pattern first: a typo (``1 m``, ``example.com;``) fails here with
the placeholder's name instead of as a puzzling ``nginx -t`` error, and no value can inject
a directive. Standard library only, so it runs on any host that has nginx and Python 3.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = Path(__file__).with_name("recollect.conf.template")

# name -> (default, pattern the value must match, what it means)
PLACEHOLDERS: dict[str, tuple[str, str, str]] = {
    "LISTEN_PORT": ("80", r"[0-9]{1,5}", "port nginx listens on"),
    "SERVER_NAME": (
        "localhost 127.0.0.1",
        r"[A-Za-z0-9.*_-]+( [A-Za-z0-9.*_-]+)*",
        "host names served (space-separated); other Host headers get no answer (444)",
    ),
    "UPSTREAM": (
        "app:8080",
        r"[A-Za-z0-9._-]+:[0-9]{1,5}|\[[0-9A-Fa-f:]+\]:[0-9]{1,5}|unix:/[A-Za-z0-9._/-]+",
        "gunicorn's address: host:port or unix:/path",
    ),
    # 1m = 1 MiB = RECOLLECT_MAX_BODY_BYTES' default (nginx's "m" is 1024*1024).
    "CLIENT_MAX_BODY_SIZE": ("1m", r"[0-9]+[kKmM]?", "largest request body; keep = the app's limit"),
    # Above the default tenant limit (60/second): a tenant meets its own, informative 429
    # first; this zone only stops floods from one address (e.g. key guessing).
    "IMPORT_MAX_BODY_SIZE": (
        "64m",
        r"[0-9]+[kKmM]?",
        "largest session import; keep = RECOLLECT_IMPORT_MAX_BYTES",
    ),
    "PER_IP_RATE": ("100r/s", r"[0-9]+r/[sm]", "sustained requests per client address"),
    "PER_IP_BURST": ("200", r"[0-9]+", "requests above the rate answered without delay"),
    # Above gunicorn's graceful_timeout (75 s by default), itself above its timeout (60 s):
    # nginx must never give up on a request gunicorn may still answer.
    # Also set in the default server, which parses every request's headers first.
    "CLIENT_HEADER_TIMEOUT": ("10s", r"[0-9]+(ms|s|m)?", "longest wait for a client's request headers"),
    "PROXY_READ_TIMEOUT": ("90s", r"[0-9]+(ms|s|m)?", "longest wait for gunicorn's response"),
}

# envsubst's syntax: ${NAME} or $NAME (a name ends at the first non-identifier character).
_REFERENCE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
# Left over after rendering, these would be placeholders nobody defined (nginx's own
# variables are lower case and never braced in the template).
_UNKNOWN = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}")


class RenderError(ValueError):
    """A placeholder value is missing or malformed, or the template names an unknown one."""


def values_from(environ: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Defaults, then the environment, then explicit overrides; only known names."""
    values = {name: default for name, (default, _, _) in PLACEHOLDERS.items()}
    values.update({name: environ[name] for name in PLACEHOLDERS if environ.get(name)})
    for name, value in (overrides or {}).items():
        if name not in PLACEHOLDERS:
            raise RenderError(f"{name} is not a placeholder of the template ({', '.join(PLACEHOLDERS)})")
        values[name] = value
    return values


def render(template: str, values: Mapping[str, str]) -> str:
    for name, (_, pattern, meaning) in PLACEHOLDERS.items():
        value = values.get(name)
        if value is None:
            raise RenderError(f"{name} has no value ({meaning})")
        if not re.fullmatch(pattern, value):
            raise RenderError(f"{name}={value!r} is not valid ({meaning})")

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        return values[name] if name in PLACEHOLDERS else match.group(0)

    rendered = _REFERENCE.sub(substitute, template)
    leftover = _UNKNOWN.search(rendered)
    if leftover:
        raise RenderError(f"the template uses {leftover.group(0)}, which is not a known placeholder")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=TEMPLATE)
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    try:
        overrides = dict(item.split("=", 1) for item in args.set)
    except ValueError:
        parser.error("--set takes NAME=VALUE")
    try:
        text = render(args.template.read_text(), values_from(os.environ, overrides))
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
