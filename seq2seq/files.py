"""Writing files and folders so that a reader never sees half of one, and a full disk says so.

Every file the framework produces (checkpoints, results, vocabularies, prepared corpora, sweep
summaries, figures) is written through `atomic_write` or `atomic_folder`: the new content goes to a
temporary beside the target, is flushed to disk, and is renamed over the target in one step, so a
crash or a full disk leaves the previous file (or none), never a truncated one.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from seq2seq.errors import DiskFull


@contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside `path`, renamed over `path` once the block succeeds.

    The file is flushed and fsynced before the rename. If the block raises, the temporary is removed
    and `path` is left as it was.

    Raises:
        DiskFull: the disk filled up while writing (the previous `path`, if any, is kept).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        written = Path(temporary).stat().st_size if Path(temporary).exists() else 0
        Path(temporary).unlink(missing_ok=True)
        if out_of_space(error):
            raise DiskFull.at(path, written) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` through `atomic_write`."""
    with atomic_write(path) as handle:
        handle.write(data)


@contextmanager
def atomic_folder(folder: str | Path, mode: int = 0o755) -> Iterator[Path]:
    """An empty staging folder beside `folder` that takes its place once the block succeeds.

    Readers that opened files of the old folder (memory maps, for one) keep them: the old folder is
    renamed aside before it is removed. If the block raises, the staging folder is removed and
    `folder` is left as it was.

    Raises:
        DiskFull: the disk filled up while the block wrote into the staging folder.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial"))
    staging.chmod(mode)  # mkdtemp makes it private; other users of a shared cache may read it too
    try:
        yield staging
        if folder.exists():
            old = staging.with_suffix(".old")
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, folder)
    except BaseException as error:
        if out_of_space(error):
            written = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
            shutil.rmtree(staging, ignore_errors=True)
            raise DiskFull.at(folder, written) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def out_of_space(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from or during, is the disk running full.

    torch.save reports a full disk as a RuntimeError ("unexpected pos") raised while handling the
    OSError, so the chain is searched, not only the error itself.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False
