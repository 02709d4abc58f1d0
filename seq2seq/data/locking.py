"""One process at a time: an exclusive file lock for work that several ranks or jobs may start at once."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive `flock` on `path` while the block runs; the OS releases it if the process dies.

    Works between processes of one machine, and across machines on file systems whose locks do (NFSv4,
    Lustre mounted with `-o flock`, GPFS).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
