# syntax=docker/dockerfile:1
# The news monitor: `monitor run` as a non-root user, config from /config, data in /data.
# Build:  docker build -t news-monitor:0.1.0 .

# --- build: the locked dependencies and the monitor, in a virtualenv we copy whole -----------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/monitor
COPY requirements.lock /tmp/requirements.lock
# Hashes in the lock file: a rebuild gets exactly the same packages, or fails.
RUN /opt/monitor/bin/pip install --require-hashes -r /tmp/requirements.lock
# A C compiler for the compiled part of matching and fingerprints (monitor/_speedups.c); the
# runtime stage has none.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY monitor /src/monitor
# Its build is optional for pip; here it must have happened.
RUN /opt/monitor/bin/pip install --no-deps /src \
 && /opt/monitor/bin/python -c "import monitor._speedups"

# --- runtime: slim, no compilers, no pip cache ------------------------------------------------
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="news-monitor" \
      org.opencontainers.image.description="Feeds, sites and Google News searches -> tagged, deduplicated alerts in Slack and a daily email digest"
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MONITOR_CONFIG_DIR=/config \
    MONITOR_DATABASE_URL=sqlite:////data/monitor.db \
    MONITOR_HTTP_LISTEN=0.0.0.0:9464 \
    MONITOR_LOG_FORMAT=json
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /data --shell /usr/sbin/nologin monitor \
 && mkdir -p /data /config \
 && chown monitor:monitor /data
COPY --from=build /opt/monitor /opt/monitor
# The shipped config is a default; mount your own over /config (read-only is fine).
COPY config/ /config/
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
# Exec form: `monitor` is PID 1 and receives SIGTERM itself, and stops cleanly within 10 s.
ENTRYPOINT ["monitor"]
CMD ["run"]
