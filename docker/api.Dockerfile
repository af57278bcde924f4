# syntax=docker/dockerfile:1
# The gateway: a static-ish Rust binary on a slim Debian base. It never links the model runtime.
# Build from the repository root: docker build -f docker/api.Dockerfile -t sentinel-api .

# The dashboard: Vite builds it from the committed client and spec.
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
COPY openapi ./openapi
COPY dashboard ./dashboard
RUN npm ci --no-audit --no-fund && npm run build --workspace dashboard

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Queries are checked against the committed .sqlx data (SQLX_OFFLINE=true in .cargo/config.toml).
# Debug info is dropped here only: the image ships the binary, not line tables.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sentinel-api \
    && install -m 0755 target/release/sentinel-api /usr/local/bin/sentinel-api

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home sentinel
COPY --from=build /usr/local/bin/sentinel-api /usr/local/bin/sentinel-api
COPY --from=web /src/dashboard/dist /usr/share/sentinel/dashboard
USER 10001:10001
ENV SENTINEL_LISTEN=0.0.0.0:8080 SENTINEL_DASHBOARD_DIR=/usr/share/sentinel/dashboard
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["sentinel-api"]
CMD ["serve"]
