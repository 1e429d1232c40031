#!/usr/bin/env bash
# Stand-ins for the Docker Hub images that the Dockerfile (python:3.11-slim) and
# docker-compose.yml (redis, nginx) use, for a machine whose Docker engine cannot pull from
# Docker Hub: Debian bookworm root filesystems made with debootstrap from Debian's own
# packages, `docker import`ed under the very tags the files name, so that the real
# Dockerfile and compose file run unchanged (tests/e2e/test_docker.py).
#
#   scripts/docker-standins.sh          # make the missing ones; prints the tags
#
# A tag that already exists and is not one of ours (a real image, pulled) is left alone.
# Slow parts are cached: each root filesystem as a tarball under
# ~/.cache/recollect/docker-standins/ (debootstrap once per STANDIN_VERSION), and an image
# already imported from the current version is not imported again. Needs root, debootstrap
# and a reachable Debian mirror (DEBIAN_MIRROR) the first time only.
set -euo pipefail
cd "$(dirname "$0")/.."
# debootstrap (and the chroot it runs) live in /usr/sbin, which a non-login root's PATH
# may lack (a CI runner's, `env -i`): scripts/bootstrap.sh installs it there.
PATH="$PATH:/usr/sbin:/sbin"

# Bump when what goes into an image changes: cached tarballs and images are then rebuilt.
STANDIN_VERSION=1
LABEL=org.recollect.standin
CACHE=${RECOLLECT_CACHE:-$HOME/.cache/recollect}/docker-standins
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKER=${DOCKER:-docker}

# The tags exactly as the project's files spell them.
python_tag=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile | sort -u)
redis_tag=$(sed -n 's/^    image: \(redis:[^ ]*\)$/\1/p' docker-compose.yml)
nginx_tag=$(sed -n 's/^    image: \(nginx:[^ ]*\)$/\1/p' docker-compose.yml)
for tag in "$python_tag" "$redis_tag" "$nginx_tag"; do
  if [ -z "$tag" ] || [ "$(wc -l <<<"$tag")" -ne 1 ]; then
    echo "docker-standins: cannot read the image tags from Dockerfile / docker-compose.yml" >&2
    exit 1
  fi
done

log() { echo "docker-standins: $*" >&2; }

# The machine's CA bundle, when it has one: pip inside the build reaches PyPI through
# whatever TLS inspection the machine's own trust store accounts for.
HOST_CA=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# --- what goes into each root filesystem ---------------------------------------------------

customize_python() {  # python:3.11-slim: `python` on PATH, venv + ensurepip (pip)
  local root=$1
  if [ -s "$HOST_CA" ]; then
    cp "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"
  fi
}

customize_redis() {  # redis: redis-server as user redis in /data, protected mode off
  local root=$1
  mkdir -p "$root/data"
  chroot "$root" chown redis:redis /data
  cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# As the official redis image's entrypoint: options alone go to redis-server, which runs as
# user redis; protected mode is off (the official image compiles it off): in a container,
# the network, not Redis, decides who connects.
set -e
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
  shift
  set -- redis-server --protected-mode no "$@"
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
EOF
  chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"
}

customize_nginx() {  # nginx: /etc/nginx/templates/*.template rendered by envsubst at start
  local root=$1
  rm -f "$root"/etc/nginx/sites-enabled/* "$root"/etc/nginx/conf.d/*
  mkdir -p "$root/etc/nginx/templates" "$root/docker-entrypoint.d"
  ln -sf /dev/stdout "$root/var/log/nginx/access.log"
  ln -sf /dev/stderr "$root/var/log/nginx/error.log"
  # The official image's nginx.conf, with Debian's user.
  cat >"$root/etc/nginx/nginx.conf" <<'EOF'
user www-data;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
EOF
  # The official image's 20-envsubst-on-templates.sh: every *.template under
  # NGINX_ENVSUBST_TEMPLATE_DIR becomes a file in conf.d/, substituting only the variables
  # that are set and whose names match NGINX_ENVSUBST_FILTER.
  cat >"$root/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
  template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
  suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
  output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
  filter="${NGINX_ENVSUBST_FILTER:-}"
  defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null))
  if [ -d "$template_dir" ]; then
    find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
      relative_path="${template#"$template_dir/"}"
      output_path="$output_dir/${relative_path%"$suffix"}"
      mkdir -p "$(dirname "$output_path")"
      echo "$0: Running envsubst on $template to $output_path"
      envsubst "$defined_envs" <"$template" >"$output_path"
    done
  fi
fi
exec "$@"
EOF
  chmod 755 "$root/docker-entrypoint.sh"
}

# name|tag|Debian packages|docker import --change lines (one per ";;")
images=(
  "python|$python_tag|python3,python3-venv,python-is-python3,ca-certificates|ENV LANG=C.UTF-8;;ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt;;CMD [\"python3\"]"
  "redis|$redis_tag|redis-server|WORKDIR /data;;VOLUME /data;;EXPOSE 6379;;ENTRYPOINT [\"docker-entrypoint.sh\"];;CMD [\"redis-server\"]"
  "nginx|$nginx_tag|nginx,gettext-base,wget|EXPOSE 80;;ENTRYPOINT [\"/docker-entrypoint.sh\"];;CMD [\"nginx\", \"-g\", \"daemon off;\"]"
)

build_rootfs() {  # name packages tarball
  local name=$1 packages=$2 tarball=$3 work
  command -v debootstrap >/dev/null 2>&1 || { log "debootstrap is not installed"; exit 1; }
  mkdir -p "$CACHE/debs"
  work=$(mktemp -d "$CACHE/rootfs-$name.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  log "debootstrap bookworm ($packages) for $name"
  debootstrap --variant=minbase --include="$packages" --cache-dir="$CACHE/debs" \
    bookworm "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  "customize_$name" "$work/root"
  # What a slim image leaves out: package lists and caches, docs, the host's identity.
  rm -rf "$work/root"/var/lib/apt/lists/* "$work/root"/var/cache/apt/*.bin \
    "$work/root"/var/cache/apt/archives/*.deb "$work/root"/usr/share/doc/* \
    "$work/root"/usr/share/man/* "$work/root"/usr/share/info/* "$work/root"/var/log/*.log \
    "$work/root"/etc/resolv.conf "$work/root"/etc/hostname
  tar -C "$work/root" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf "$work"
  trap - EXIT
}

for spec in "${images[@]}"; do
  IFS='|' read -r name tag packages changes <<<"$spec"
  current=$("$DOCKER" image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$tag" 2>/dev/null) \
    || current=absent
  case "$current" in
    "$STANDIN_VERSION" | "" | "<no value>")  # ours, current; or a real image: use it
      echo "$tag"
      continue ;;
  esac
  tarball="$CACHE/$name-bookworm-v$STANDIN_VERSION.tar"
  if [ ! -f "$tarball" ]; then
    rm -f "$CACHE/$name"-bookworm-v*.tar  # an older version's
    build_rootfs "$name" "$packages" "$tarball"
  fi
  args=(--change "LABEL $LABEL=$STANDIN_VERSION"
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  while [ -n "$changes" ]; do
    args+=(--change "${changes%%;;*}")
    [ "$changes" = "${changes#*;;}" ] && break
    changes=${changes#*;;}
  done
  log "docker import $tarball as $tag"
  "$DOCKER" import "${args[@]}" "$tarball" "$tag" >/dev/null
  echo "$tag"
done
