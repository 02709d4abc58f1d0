#!/usr/bin/env bash
# A base image for the Dockerfile made on this machine, for where no image can be pulled (no registry,
# an air-gapped build host): Debian's minimal system and Python 3.11 from debootstrap, imported into
# Docker with a virtual environment first on PATH, which is what the Dockerfile expects of its
# default base (python:3.11-slim).
#
#   sudo scripts/docker/local_base.sh [TAG]      # default TAG seq2seq-base:bookworm; needs debootstrap
#   docker build --build-arg BASE_IMAGE=seq2seq-base:bookworm ...    # see the Dockerfile's header
#
# The host's CA bundle goes into the image (pip is pointed at it), so that a build behind a proxy that
# re-signs TLS reaches the package index as the host does. Packages come from Debian's mirror
# ($DEBIAN_MIRROR).
set -euo pipefail

TAG=${1:-seq2seq-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d "${TMPDIR:-/var/tmp}/seq2seq-base.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR" >&2
chroot "$ROOT" python3 -m venv /opt/python
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' - "$TAG"
