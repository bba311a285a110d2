# pagerace dashboard image. Build: docker build -t pagerace .   Run: docker run -p 8000:8000 pagerace
# The base is pinned by digest, so a rebuild gets the same Python and Debian until this line
# changes. The digest is the one several unrelated public Dockerfiles pin for this tag; it could
# not be checked from the machine this was written on (no Docker Hub access). To refresh it:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   (then paste "Digest:" here)
FROM python:3.11.15-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba

LABEL org.opencontainers.image.title="pagerace" \
      org.opencontainers.image.description="Step through Linux page-lifecycle races: explore every interleaving, share a link, follow a live room." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/deploy.md"

# PORT: PaaS hosts (Cloud Run, Render, Heroku) say which port to listen on through it.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

RUN groupadd --system --gid 10001 pagerace \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /srv/pagerace \
        --shell /usr/sbin/nologin pagerace

WORKDIR /srv/pagerace

# Dependencies first, so this layer is cached until the pins change: the exact versions of
# constraints.txt (the lock, transitive packages included), the same that CI tests.
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt

# Sources. The build puts static/ and templates/ into the installed app package (pyproject
# package-dir), so this is a regular install; README.md and LICENSE are the package metadata's.
COPY pyproject.toml README.md LICENSE ./
COPY engine ./engine
COPY app ./app
COPY static ./static
COPY templates ./templates
RUN pip install --no-cache-dir --no-deps .

# Files stay root-owned (read-only for the service user).
USER 10001:10001

EXPOSE 8000

# /healthz answers without touching the engine: cheap enough to probe every 30 s.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]

# A shell only to read $PORT; exec hands PID 1 to pagerace, so SIGTERM stops it cleanly.
CMD ["sh", "-c", "exec pagerace serve --host 0.0.0.0 --port \"${PORT:-8000}\""]
