# syntax=docker/dockerfile:1
# The worker, for CPU (target `cpu`, the default) or for NVIDIA GPUs (target `cuda`: the `cuda`
# feature, built against CUDA 13.0 for CUDA_COMPUTE_CAP, run on the NVIDIA container runtime).
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile --target cpu -t sentinel-worker .
#   docker build -f docker/worker.Dockerfile --target cuda --build-arg CUDA_COMPUTE_CAP=89 -t sentinel-worker:cuda .
# The model is not in the image: mount it (docker-compose.yml's `models` volume) and point
# SENTINEL_MODEL at it.

FROM rust:1.95-bookworm AS build-cpu
WORKDIR /src
COPY . .
ENV CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sentinel-worker \
    && install -m 0755 target/release/sentinel-worker /usr/local/bin/sentinel-worker

FROM nvidia/cuda:13.0.0-devel-ubuntu24.04 AS build-cuda
ARG CUDA_COMPUTE_CAP=89
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ca-certificates curl pkg-config \
    && rm -rf /var/lib/apt/lists/*
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
WORKDIR /src
COPY . .
ENV CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sentinel-worker --features cuda \
    && install -m 0755 target/release/sentinel-worker /usr/local/bin/sentinel-worker

FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04 AS cuda
RUN useradd --system --uid 10001 --user-group --no-create-home sentinel
COPY --from=build-cuda /usr/local/bin/sentinel-worker /usr/local/bin/sentinel-worker
USER 10001:10001
ENV HF_HUB_OFFLINE=1 SENTINEL_MODEL=/models/SmolLM2-135M-Instruct.Q4_1.gguf
ENTRYPOINT ["sentinel-worker"]
CMD ["run"]

FROM debian:bookworm-slim AS cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home sentinel
COPY --from=build-cpu /usr/local/bin/sentinel-worker /usr/local/bin/sentinel-worker
USER 10001:10001
ENV HF_HUB_OFFLINE=1 SENTINEL_MODEL=/models/SmolLM2-135M-Instruct.Q4_1.gguf
ENTRYPOINT ["sentinel-worker"]
CMD ["run"]
