# Training image. Default: CUDA build of torch (PyPI's Linux wheels bundle the CUDA runtime).
#   docker build -t seq2seq .
#   docker run --gpus all seq2seq device=gpu
# The translation server from the same image (the checkpoint mounted, the port published):
#   docker run -p 8000:8000 -v "$PWD/outputs:/app/outputs" -e LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
#       --entrypoint seq2seq-serve seq2seq --checkpoint outputs/RUN/checkpoints/best.ckpt --host 0.0.0.0 --port 8000
# CPU-only variant:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t seq2seq:cpu .
# Where no image can be pulled: a base made locally (scripts/docker/local_base.sh: Debian's python3 in a
# debootstrap folder), and the torch wheel from a folder served on the build's network:
#   docker build --network host --build-arg BASE_IMAGE=seq2seq-base:bookworm \
#       --build-arg TORCH_FIND_LINKS=http://127.0.0.1:8765/ -t seq2seq:cpu .
ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple
ARG TORCH_FIND_LINKS=
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# jemalloc for the server, preloaded as in the serve line above: under glibc's malloc its memory crept up
# under a steady load (README, "Serve"). Linked at one path whatever the architecture. Debian's package
# versions are not pinned: a point release removes the old ones from the mirror.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 \
    && ln -s "$(find /usr/lib -name libjemalloc.so.2 | head -n 1)" /usr/local/lib/libjemalloc.so.2 \
    && rm -rf /var/lib/apt/lists/*

# /app belongs to the runtime user: runs write outputs/ and the sentencepiece .cache/ there.
RUN useradd --create-home --uid 1000 seq2seq && install -d -o seq2seq -g seq2seq /app
WORKDIR /app

# The same install steps as .ci/run: torch pinned first, then the project with the locked versions
# of its dependencies (requirements.lock, the versions CI tests).
RUN python -m pip install --index-url "${TORCH_INDEX_URL}" ${TORCH_FIND_LINKS:+--find-links "$TORCH_FIND_LINKS"} \
    "torch==${TORCH_VERSION}"
COPY --chown=seq2seq:seq2seq pyproject.toml README.md requirements.lock ./
COPY --chown=seq2seq:seq2seq seq2seq ./seq2seq
COPY --chown=seq2seq:seq2seq hydra_plugins ./hydra_plugins
RUN python -m pip install -c requirements.lock -e ".[wandb,tensorboard,sweep,serve]"
COPY --chown=seq2seq:seq2seq conf ./conf
COPY --chown=seq2seq:seq2seq data ./data
COPY --chown=seq2seq:seq2seq scripts ./scripts
COPY --chown=seq2seq:seq2seq train.py ./

USER seq2seq
ENTRYPOINT ["python", "train.py"]
