# payq: one image for the API (the default command), the worker and the pollers.
#   docker build -t payq .
#   docker run -e PAYQ_REDIS_URL=redis://redis:6379/0 -e PAYQ_WEBHOOK_TOKENS=... -p 8000:8000 payq
#   docker run -e PAYQ_REDIS_URL=... payq worker --queues '*' --concurrency 4
#   docker run -e PAYQ_REDIS_URL=... -e PAYQ_BITCOIN_RPC_URL=... payq poll bitcoin
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in a layer of their own that stays cached until pyproject.toml or the pinned
# versions (constraints.txt) change.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir -p service workers pollers \
 && touch service/__init__.py workers/__init__.py pollers/__init__.py \
 && pip install -c constraints.txt . \
 && pip uninstall -y payq

COPY service ./service
COPY workers ./workers
COPY pollers ./pollers
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin payq

USER payq
EXPOSE 8000

# SIGTERM makes a worker stop claiming and finish its jobs within PAYQ_SHUTDOWN_GRACE_S (25 s);
# give the container longer than that to stop (docker run --stop-timeout 30, compose
# stop_grace_period: 30s) so no job is cut off.
STOPSIGNAL SIGTERM
ENV PAYQ_SHUTDOWN_GRACE_S=25

# For the API. A worker container overrides it with: payq check worker
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["payq", "check", "api", "--url", "http://127.0.0.1:8000/healthz"]

ENTRYPOINT ["payq"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
