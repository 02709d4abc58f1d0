# Training image. Default: CUDA build of torch (PyPI's Linux wheels bundle the CUDA runtime).
#   docker build -t seq2seq .
#   docker run --gpus all seq2seq device=gpu
# The translation server from the same image (the checkpoint mounted, the port published):
#   docker run -p 8000:8000 -v "$PWD/outputs:/app/outputs" --entrypoint seq2seq-serve seq2seq \
#       --checkpoint outputs/RUN/checkpoints/best.ckpt --host 0.0.0.0 --port 8000
# CPU-only variant:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t seq2seq:cpu .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# /app belongs to the runtime user: runs write outputs/ and the sentencepiece .cache/ there.
RUN useradd --create-home --uid 1000 seq2seq && install -d -o seq2seq -g seq2seq /app
WORKDIR /app

# The same install steps as .ci/run: torch pinned first, then the project with the locked versions
# of its dependencies (requirements.lock, the versions CI tests).
RUN python -m pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
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
