"""The errors a user can cause or meet, each with its exit code, and the one place that reports them.

Their messages are one paragraph that names the file, line or config key and says what to do;
`exit_with` prints that paragraph instead of a traceback and ends the process with the error's code.
`train.py`, the console commands and the scripts all end through it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import NoReturn


class Seq2SeqError(Exception):
    """Base of the errors reported to users as one paragraph; `exit_code` is the process status."""

    exit_code = 1


class InputError(Seq2SeqError, ValueError):
    """Bad input: a corpus, checkpoint or setting that cannot be used as given."""

    exit_code = 2


class TrainingDiverged(Seq2SeqError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class OutOfMemoryAtStart(Seq2SeqError):
    """The largest batch does not fit in memory; found at step 0 by trying it first."""

    exit_code = 4


class Preempted(Seq2SeqError):
    """SIGTERM or SIGUSR1 arrived; a checkpoint was saved at a step boundary. EX_TEMPFAIL: retry later."""

    exit_code = 75


class LostRank(Seq2SeqError):
    """A rank of a distributed run died or stopped answering; the others gave up. EX_UNAVAILABLE."""

    exit_code = 69


class DiskFull(Seq2SeqError):
    """The disk filled up while a file was written; the previous file was kept. EX_IOERR."""

    exit_code = 74

    @classmethod
    def at(cls, path: Path, written: int) -> DiskFull:
        """The error for `path`, of which `written` bytes were written: it needs more than that, and the free space."""
        try:
            free = f"{shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free / 2**20:,.1f} MiB"
        except OSError:
            free = "an unknown amount"
        return cls(
            f"The disk is full: writing {path} stopped after {written / 2**20:,.1f} MiB (it needs more than that), "
            f"with {free} free on its file system now. Nothing was lost: "
            f"the previous {path.name}, if there was one, is kept whole and no partial file is left. Free some "
            f"space there (or point paths.output_dir / paths.cache_dir at a larger disk), then run the same "
            f"command again; a training run continues from its last checkpoint with resume=true."
        )


class DownloadError(Seq2SeqError):
    """A download failed or did not match its checksum; the message says which file and what to do."""

    exit_code = 2


def user_error(error: BaseException | None) -> Seq2SeqError | None:
    """The Seq2SeqError behind `error`, also when a library (Hydra's `instantiate`, Lightning) wrapped it."""
    while error is not None and not isinstance(error, Seq2SeqError):
        error = error.__cause__
    return error


def exit_with(error: Seq2SeqError) -> NoReturn:
    """Prints the error's paragraph on stderr as `error: ...` and exits with its code."""
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(error.exit_code) from None
