"""Configuration: read once at start from flags, falling back to the environment."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Transport = Literal["stdio", "streamable-http"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# A path-scoped key (api.md §9) sits in the URL itself: /k/<key>/...
_PATH_KEY = re.compile(r"/k/[^/?#]+")


@dataclass(frozen=True)
class Config:
    url: str
    api_key: str | None
    timeout: float | None
    max_retries: int | None
    transport: Transport
    host: str
    port: int
    path: str
    http_token: str | None
    log_level: LogLevel

    def __repr__(self) -> str:
        # The dataclass repr would print both secrets; anything logging a Config must not.
        return (
            f"Config(url={redact(self.url)!r}, api_key={'***' if self.api_key else None}, "
            f"transport={self.transport!r}, host={self.host!r}, port={self.port})"
        )


def redact(url: str) -> str:
    """``url`` with a path-scoped key replaced, so it can be printed."""
    return _PATH_KEY.sub("/k/***", url)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recollect-mcp",
        description="MCP server exposing one Recollect tenant's chat memory to agents as tools.",
        epilog="Every flag falls back to the environment variable named in its help.",
    )
    parser.add_argument(
        "--url",
        default=env.get("RECOLLECT_URL"),
        help="base URL of the Recollect server, possibly with a path-scoped key "
        "(http://host:8080/k/rk_...) [RECOLLECT_URL]",
    )
    parser.add_argument(
        "--api-key",
        default=env.get("RECOLLECT_API_KEY"),
        help="the tenant's API key; prefer the variable, a flag shows in process lists [RECOLLECT_API_KEY]",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=env.get("RECOLLECT_TIMEOUT"),
        help="seconds per HTTP request to Recollect (default: the SDK's) [RECOLLECT_TIMEOUT]",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=env.get("RECOLLECT_MAX_RETRIES"),
        help="retries of a failed request (default: the SDK's) [RECOLLECT_MAX_RETRIES]",
    )
    parser.add_argument(
        "--transport",
        choices=["stdio", "streamable-http"],
        default=env.get("RECOLLECT_MCP_TRANSPORT", "stdio"),
        help="MCP transport (default stdio) [RECOLLECT_MCP_TRANSPORT]",
    )
    parser.add_argument(
        "--host",
        default=env.get("RECOLLECT_MCP_HOST", "127.0.0.1"),
        help="streamable HTTP: address to listen on (default 127.0.0.1) [RECOLLECT_MCP_HOST]",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=env.get("RECOLLECT_MCP_PORT", "8000"),
        help="streamable HTTP: port (default 8000) [RECOLLECT_MCP_PORT]",
    )
    parser.add_argument(
        "--path",
        default=env.get("RECOLLECT_MCP_PATH", "/mcp"),
        help="streamable HTTP: endpoint path (default /mcp) [RECOLLECT_MCP_PATH]",
    )
    parser.add_argument(
        "--http-token",
        default=env.get("RECOLLECT_MCP_TOKEN"),
        help="streamable HTTP: bearer token MCP clients must send; required to listen on a "
        "non-loopback address [RECOLLECT_MCP_TOKEN]",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        default=env.get("RECOLLECT_MCP_LOG_LEVEL", "WARNING"),
        help="log level on stderr (default WARNING) [RECOLLECT_MCP_LOG_LEVEL]",
    )
    return parser


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Parse ``argv`` over ``env``; a bad value exits with status 2 and one line naming it."""
    env = os.environ if env is None else env
    parser = _parser(env)
    args = parser.parse_args(argv)
    # argparse applies type= to string defaults too, so values from the environment are
    # converted here; these checks only cover what a type cannot express.
    # Nor does it check choices= against a default: a value from the environment is checked here.
    if args.transport not in ("stdio", "streamable-http"):
        parser.error(
            f"--transport / RECOLLECT_MCP_TRANSPORT must be stdio or streamable-http, got {args.transport!r}"
        )
    if args.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        parser.error(f"--log-level / RECOLLECT_MCP_LOG_LEVEL is not a log level: {args.log_level!r}")
    if not args.url:
        parser.error("the Recollect URL is required: --url or RECOLLECT_URL")
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--url / RECOLLECT_URL must be an http(s) URL, got {redact(args.url)!r}")
    if not args.api_key and not _PATH_KEY.search(parts.path):
        parser.error("no API key: set RECOLLECT_API_KEY (or --api-key), or use a /k/<key> URL")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout / RECOLLECT_TIMEOUT must be positive")
    if args.max_retries is not None and args.max_retries < 0:
        parser.error("--max-retries / RECOLLECT_MAX_RETRIES must be 0 or more")
    if not 0 < args.port < 65536:
        parser.error("--port / RECOLLECT_MCP_PORT must be between 1 and 65535")
    if not args.path.startswith("/"):
        parser.error("--path / RECOLLECT_MCP_PATH must start with '/'")
    # The HTTP endpoint acts with the tenant's key for whoever reaches it: off the loopback
    # interface it must check a token of its own.
    if args.transport == "streamable-http" and not is_loopback(args.host) and not args.http_token:
        parser.error(
            f"listening on {args.host} would expose the tenant's memory to the network: "
            "set RECOLLECT_MCP_TOKEN (or --http-token), or listen on 127.0.0.1"
        )
    return Config(
        url=args.url.rstrip("/"),
        api_key=args.api_key or None,
        timeout=args.timeout,
        max_retries=args.max_retries,
        transport=args.transport,
        host=args.host,
        port=args.port,
        path=args.path,
        http_token=args.http_token or None,
        log_level=args.log_level,
    )
