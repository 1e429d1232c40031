#!/usr/bin/env bash
# Create .venv with the project and its dev tools; install the Debian packages the
# tests need when they are missing and apt is available. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need_apt=()

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "recollect needs Python >= 3.11 (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  need_apt+=("python3-venv")
fi
# Each argument is a command that its Debian package of the same name provides, or
# command:package where the names differ (dockerd:docker.io). Daemons such as nginx live in
# /usr/sbin, which is not on a normal user's PATH.
for arg in "$@"; do
  cmd=${arg%%:*} pkg=${arg#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_apt+=("$pkg")
done

if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing with apt: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing: ${need_apt[*]} (and no apt-get to install them)" >&2
    exit 1
  fi
fi

# Debian's redis-server and nginx packages may start services on 6379 and 80; the tests
# never use them.
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ clients/python/pyproject.toml -nt "$stamp" ] \
   || [ clients/mcp/pyproject.toml -nt "$stamp" ]; then
  echo "recollect: installing the project, its clients and dev tools into .venv (first run: about a minute)..."
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  .venv/bin/python -m pip install -q -e './clients/python[langchain]'
  .venv/bin/python -m pip install -q -e ./clients/mcp
  touch "$stamp"
fi
