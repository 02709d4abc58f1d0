"""The errors a user can cause or meet, each with the exit code `train.py` ends with.

Their messages are one paragraph that names the file, line or config key and says what to do;
`train.py` prints that paragraph instead of a traceback.
"""

from __future__ import annotations


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
