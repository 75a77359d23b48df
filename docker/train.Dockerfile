# Training image: the developer setup (make setup = scripts/setup.sh) on Debian 12, running `refine-dp`
# commands with runs/ mounted. CPU torch by default; CUDA torch with a build argument. Written, not built
# here (no container engine or registry): see docker/README.md.
#   docker build -f docker/train.Dockerfile -t refine-dp:train .
#   docker build -f docker/train.Dockerfile --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t refine-dp:train-cuda .
FROM debian:12

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev build-essential cmake make git libegl1 libegl-mesa0 libosmesa6 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /refine-dp
# torch first, from the chosen index, so that setup's pinned torch==2.13.0 is already satisfied
RUN python3.11 -m venv .venv && .venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX" torch==2.13.0
COPY . .
RUN REFINE_DP_ALLOW_CUDA_TORCH=1 make setup

VOLUME /refine-dp/runs
ENTRYPOINT [".venv/bin/refine-dp"]
CMD ["--help"]
