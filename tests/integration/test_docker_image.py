"""The Dockerfile built and run for real: `docker build`, then `docker run IMAGE debug=tiny` trains.

No image can be pulled here, so the base is made locally (`scripts/docker/local_base.sh`: Debian's
Python from debootstrap) and the torch wheel is the one this machine's pip resolves, served to the
build over loopback (`TORCH_FIND_LINKS`); everything else the image installs comes from the package
index as in any build. Skipped where no Docker engine answers; `.ci/run` starts one.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from seq2seq.config import PROJECT_ROOT

BASE = "seq2seq-base:bookworm"


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60).returncode == 0


REQUIRED = os.environ.get("SEQ2SEQ_REQUIRE_DOCKER") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not REQUIRED and not engine_answers(), reason="no Docker engine answers `docker info`"
    ),
]


def torch_version() -> str:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    return re.search(r"^ARG TORCH_VERSION=(\S+)$", dockerfile, flags=re.MULTILINE).group(1)


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def run(*command: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


JEMALLOC = "/usr/local/lib/libjemalloc.so.2"  # where the Dockerfile links it, for its serve line


def test_the_image_builds_on_a_local_base_and_trains_the_bundled_corpus(tmp_path: Path) -> None:
    if run("docker", "image", "inspect", BASE, timeout=60).returncode != 0:
        made = run(str(PROJECT_ROOT / "scripts" / "docker" / "local_base.sh"), BASE, timeout=900)
        assert made.returncode == 0, made.stderr[-3000:]
    wheels = tmp_path / "wheels"
    fetched = run(
        sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels), f"torch=={torch_version()}",
        timeout=900,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    server, port = serve(wheels)
    image = f"seq2seq:test-{uuid.uuid4().hex[:8]}"
    try:
        built = run(
            "docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE}",
            "--build-arg", f"TORCH_FIND_LINKS=http://127.0.0.1:{port}/", "-t", image, ".",
            timeout=1800,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        trained = run("docker", "run", "--rm", image, "debug=tiny", timeout=600)
        output = trained.stdout + trained.stderr
        assert trained.returncode == 0, output[-3000:]
        assert re.search(r'results: \{.*"steps": 5', output), output[-3000:]
        served = run(
            "docker", "run", "--rm", "-e", f"LD_PRELOAD={JEMALLOC}", "--entrypoint", "seq2seq-serve", image,
            "--help", timeout=300,
        )  # fmt: skip
        assert served.returncode == 0 and "--checkpoint" in served.stdout, served.stderr[-3000:]
        assert "cannot be preloaded" not in served.stderr, served.stderr[-3000:]  # the serve line's jemalloc
    finally:
        server.shutdown()
        run("docker", "rmi", "-f", image, timeout=300)
