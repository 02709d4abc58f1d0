"""The Dockerfile's claims checked against the project, without building it (test_docker_image.py builds it).

Base image and torch version agree with pyproject and CI, the install commands are the ones `.ci/run`
runs, the image runs as a non-root user with train.py as entry point, and `.dockerignore` keeps
corpora, outputs and runs out. hadolint lints it where it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import tomllib

from seq2seq.config import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
CI = (PROJECT_ROOT / ".ci" / "run").read_text()


def arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert match, f"Dockerfile has no default for ARG {name}"
    return match.group(1)


def test_base_python_is_the_one_ci_runs_and_pyproject_allows() -> None:
    python = arg("PYTHON_VERSION")
    assert arg("BASE_IMAGE") == "python:${PYTHON_VERSION}-slim"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, flags=re.MULTILINE)
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}"
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in requires.removeprefix(">=").split("."))
    assert tuple(int(x) for x in python.split(".")) >= minimum


def test_torch_is_pinned_as_in_ci_and_satisfies_pyproject() -> None:
    torch_version = arg("TORCH_VERSION")
    assert f"torch=={torch_version}" in CI
    dependencies = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_requirement,) = [d for d in dependencies if d.startswith("torch")]
    minimum = torch_requirement.removeprefix("torch>=")
    assert tuple(map(int, torch_version.split("."))) >= tuple(map(int, minimum.split(".")))


def test_project_install_is_the_ci_command_with_the_lock_file() -> None:
    installs = re.findall(r"^RUN (python -m pip install .*)$", DOCKERFILE, flags=re.MULTILINE)
    editable = re.compile(r'-e "?\.')
    project = [line for line in installs if editable.search(line)]
    assert len(project) == 1 and "-c requirements.lock" in project[0]
    ci_project = [line for line in CI.splitlines() if "pip install" in line and editable.search(line)]
    assert ci_project and all("-c requirements.lock" in line for line in ci_project)
    assert (PROJECT_ROOT / "requirements.lock").is_file()
    assert "COPY" in DOCKERFILE and "requirements.lock" in DOCKERFILE


def test_runs_as_non_root_with_train_py_as_entry_point() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["python", "train.py"\]$', DOCKERFILE, flags=re.MULTILINE)


def test_the_image_installs_the_server_and_says_how_to_start_it() -> None:
    assert re.search(r'-e "\.\[[^"]*\bserve\b[^"]*\]"', DOCKERFILE)
    assert "--entrypoint seq2seq-serve" in DOCKERFILE and "--host 0.0.0.0" in DOCKERFILE
    assert "-e LD_PRELOAD=/usr/local/lib/libjemalloc.so.2" in DOCKERFILE  # the malloc README "Serve" asks for
    assert "libjemalloc2" in DOCKERFILE and "/usr/local/lib/libjemalloc.so.2" in DOCKERFILE


def test_dockerignore_keeps_corpora_outputs_and_runs_out() -> None:
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    for entry in ("data/*", "outputs", "multirun", "wandb", "lightning_logs", ".git"):
        assert entry in ignored, entry
    assert "!data/bundled" in ignored  # the default run's corpus goes in


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_is_clean() -> None:
    done = subprocess.run(
        ["hadolint", str(PROJECT_ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
