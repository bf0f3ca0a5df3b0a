# syntax=docker/dockerfile:1
# Achilles container image: achilles-api (default), achilles-raw-sink,
# achilles-processor, achilles-agent and the achilles CLI (e.g. `achilles migrate`),
# all in /usr/local/bin: every `achilles*` binary of the workspace is copied.
#   docker build -t achilles:local .
# Used by docker-compose.kafka.yml. Needs BuildKit (the default builder) for the
# cache mounts.

# ---- build -------------------------------------------------------------------
FROM rust:1-bookworm AS builder
# rdkafka builds its bundled librdkafka with librdkafka's own ./configure + make
# (not cmake): a C toolchain, pkg-config, zlib headers, python3 and perl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config zlib1g-dev libssl-dev python3 perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# sqlx: never reach for a database at compile time (use the prepared .sqlx data, if any).
ENV SQLX_OFFLINE=true
# target/ is a cache mount (gone after this step), so copy the binaries out in it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -executable -name 'achilles*' -exec cp {} /out/ \; \
 && for b in achilles achilles-api achilles-raw-sink; do test -x "/out/$b" || { echo "missing $b" >&2; exit 1; }; done \
 && ls -l /out

# ---- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
# curl: for the compose healthcheck on /readyz.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl zlib1g libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 achilles \
 && useradd --system --uid 10001 --gid achilles --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin achilles
COPY --from=builder /out/ /usr/local/bin/
# Numeric, so Kubernetes can verify runAsNonRoot without resolving the name.
USER 10001:10001
# In a container the API must listen beyond loopback.
ENV ACHILLES_API__LISTEN=0.0.0.0:8080 \
    ACHILLES_LOG_FORMAT=json
# 8080: the API; 9101/9102/9103: /metrics, /healthz, /readyz of raw-sink/processor/agent.
EXPOSE 8080 9101 9102 9103
CMD ["achilles-api"]
