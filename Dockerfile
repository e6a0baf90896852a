# syntax=docker/dockerfile:1

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# cmake is a fallback for the native crypto crates on less common targets; librdkafka (the
# Kafka bus) is built from its bundled sources with make, against OpenSSL and zlib.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake make libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# 1. Compile the dependencies only, against placeholder sources, so that this
#    layer stays cached until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked --bin cpaas \
    && rm -rf src tests

# 2. Compile the service itself.
COPY src ./src
COPY migrations ./migrations
COPY assets ./assets
COPY config ./config
COPY tests ./tests
# Copied files keep their original timestamps, which can be older than the
# placeholder build; touch them so cargo rebuilds the crate.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin cpaas \
    && install -D -m 0755 target/release/cpaas /out/cpaas

# ---------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 cpaas \
    && useradd --system --uid 10001 --gid cpaas --home-dir /app --shell /usr/sbin/nologin cpaas \
    && mkdir -p /app/.cpaas \
    && chown -R cpaas:cpaas /app

COPY --from=builder /out/cpaas /usr/local/bin/cpaas
COPY --from=builder --chown=cpaas:cpaas /build/assets /app/assets

WORKDIR /app
USER cpaas

ENV LISTEN_ADDR=0.0.0.0:8080 \
    DEV_KEYS_DIR=/app/.cpaas

EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
    CMD curl -fsS http://localhost:8080/cpaas/v1/_internal/healthz || exit 1

ENTRYPOINT ["cpaas"]
CMD ["serve"]
