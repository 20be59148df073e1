# syntax=docker/dockerfile:1
# threadscribe in one small image: the bot and its dependencies in a virtualenv, run as a non-root
# user, with the SQLite database (and the spool of downloads in transit) in the /data volume.
#
#   docker build -t threadscribe .
#   docker run --env-file .env -v threadscribe-data:/data -p 3000:3000 threadscribe
#
# The same image runs in Socket Mode (SLACK_APP_TOKEN set) and HTTP mode; /healthz and /metrics are
# served on PORT in both, so the HEALTHCHECK below works either way.

ARG PYTHON_VERSION=3.11

# -- build: a virtualenv with the package installed ---------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
WORKDIR /src
# Dependencies first, from pyproject.toml alone (with empty packages standing in for the code):
# editing the code then rebuilds only the last, fast layer.
COPY pyproject.toml README.md ./
RUN mkdir bot storage \
    && touch bot/__init__.py storage/__init__.py \
    && /venv/bin/pip install . \
    && /venv/bin/pip uninstall --yes threadscribe
COPY bot ./bot
COPY storage ./storage
RUN /venv/bin/pip install --no-deps .

# -- runtime: the same Python, no compilers, no pip cache, no source tree ----------------------
FROM python:${PYTHON_VERSION}-slim
ARG UID=10001
# The app writes only to /data; everything else stays owned by root and read-only to it.
RUN useradd --system --user-group --uid "${UID}" --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin threadscribe \
    && mkdir /app /data \
    && chown threadscribe:threadscribe /data
COPY --from=build /venv /venv
# `python -m bot check` compares the token's scopes with this manifest (found in the working dir).
COPY manifest.yml /app/manifest.yml
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_PATH=/data/threadscribe.db \
    PORT=3000
WORKDIR /app
USER threadscribe
# A named volume starts out with the ownership above; a bind-mounted host directory must be
# writable by UID 10001 (`python -m bot check` says so when it is not).
VOLUME ["/data"]
EXPOSE 3000
# slim has no curl: Python's urllib asks /healthz, which answers 503 (an error here) when the
# database, the scheduler or the poll cycle is not well.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
# SIGTERM lets a poll cycle finish its writes before the process exits.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
