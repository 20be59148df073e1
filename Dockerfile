# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 threadscribe && mkdir /data && chown threadscribe /data
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATABASE_PATH=/data/threadscribe.db \
    PORT=3000
USER threadscribe
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
CMD ["python", "-m", "bot", "run"]
