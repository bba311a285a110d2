# pagerace dashboard image. Build: docker build -t pagerace .   Run: docker run -p 8000:8000 pagerace
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 pagerace \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /srv/pagerace \
        --shell /usr/sbin/nologin pagerace

WORKDIR /srv/pagerace

# Dependencies first, so this layer is cached until the pins change.
COPY requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.txt

# Sources. The build puts static/ and templates/ into the installed app package (pyproject
# package-dir), so this is a regular install; README.md and LICENSE are the package metadata's.
COPY README.md LICENSE ./
COPY engine ./engine
COPY app ./app
COPY static ./static
COPY templates ./templates
RUN pip install --no-cache-dir --no-deps .

# Files stay root-owned (read-only for the service user).
USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

CMD ["pagerace", "serve", "--host", "0.0.0.0", "--port", "8000"]
