"""Resume, preemption, determinism and the bad-input catalogue, with `python train.py` as users run it.

Every catalogue entry checks the one-paragraph message, the exit code, and that no output was left
behind (no results, model, vocabulary or config in the run folder).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from seq2seq.config import PROJECT_ROOT
from seq2seq.errors import DiskFull, InputError, OutOfMemoryAtStart, Preempted, TrainingDiverged

pytestmark = pytest.mark.slow

# Small batches make an epoch of the bundled corpus ~2000 steps long, so a signal lands mid-epoch.
LONG_TINY = ["debug=tiny", "trainer.max_steps=150", "data.max_tokens=256", "test=false"]
TIMING_KEYS = {"train/tokens_per_sec", "wall_time_s", "best_checkpoint"}


def train_command(run_dir: Path, cache_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={cache_dir}",
        *overrides,
    ]


def run_train(run_dir: Path, cache_dir: Path, *overrides: str, **kwargs) -> subprocess.CompletedProcess:
    command = train_command(run_dir, cache_dir, "debug=tiny", *overrides)
    return subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, **kwargs, check=False
    )


def step_losses(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return {
            int(row["step"]): float(row["train/loss"])
            for row in csv.DictReader(handle)
            if row.get("train/loss")
        }


def results_without_timing(run_dir: Path) -> dict:
    return {
        k: v for k, v in json.loads((run_dir / "results.json").read_text()).items() if k not in TIMING_KEYS
    }


def assert_nothing_written(run_dir: Path) -> None:
    """Hydra's own record (.hydra/, train.log) and empty logger folders may exist; no file the run produces may."""
    files = [p.relative_to(run_dir) for p in run_dir.rglob("*") if p.is_file()] if run_dir.exists() else []
    left = [str(p) for p in files if p.parts[0] != ".hydra" and str(p) != "train.log"]
    assert left == [], left


def one_paragraph(stderr: str, *fragments: str) -> str:
    """The `error: ...` line of stderr, checked to hold each fragment and to come without a traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    (line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


# SIGUSR1's run also resumes a per-step schedule over the run's budget and the EMA of the weights.
SCHEDULED = ["scheduler=cosine", "averaging=ema", "callbacks.ema.update_starting_at_step=20"]


@pytest.mark.parametrize(
    "signum,extra", [(signal.SIGTERM, []), (signal.SIGUSR1, SCHEDULED)], ids=["SIGTERM", "SIGUSR1-cosine-ema"]
)
def test_interrupted_and_resumed_run_matches_the_uninterrupted_one(
    signum: signal.Signals, extra: list[str], tmp_path: Path, cache_dir: Path
) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    done = subprocess.run(
        train_command(whole, cache_dir, *LONG_TINY, *extra),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(
            train_command(parts, cache_dir, *LONG_TINY, *extra),
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        while "checkpoint after the current step and exit" not in log.read_text():  # handlers are installed
            assert first.poll() is None, log.read_text()[-3000:]
            time.sleep(0.01)
        first.send_signal(signum)
        assert first.wait(timeout=300) == Preempted.exit_code, log.read_text()[-3000:]
    stopped = one_paragraph(log.read_text(), f"Stopped by {signum.name} after step", "resume=true")
    stop_step = int(stopped.split("after step ")[1].split()[0])
    assert 0 < stop_step < 150
    assert (parts / "checkpoints" / "last.ckpt").is_file() and not (parts / "results.json").exists()
    assert not list((parts / "checkpoints").glob("*.tmp"))

    resumed = subprocess.run(
        train_command(parts, cache_dir, *LONG_TINY, *extra, "resume=true"),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Step for step the same losses (exactly: same batches, same dropout masks, same optimizer state).
    assert step_losses(parts) == step_losses(whole)
    assert len(step_losses(whole)) == 150
    expected, got = results_without_timing(whole), results_without_timing(parts)
    assert got.pop("train/pad_fraction") == pytest.approx(expected.pop("train/pad_fraction"), rel=1e-9)
    assert got == expected


def test_same_config_and_seed_give_identical_results(tmp_path: Path, cache_dir: Path) -> None:
    for name in ("a", "b"):
        done = run_train(tmp_path / name, cache_dir, "trainer.max_steps=20", "decoder.dropout=0.3")
        assert done.returncode == 0, done.stderr[-3000:]
    assert results_without_timing(tmp_path / "a") == results_without_timing(tmp_path / "b")
    assert step_losses(tmp_path / "a") == step_losses(tmp_path / "b")


def test_largest_batch_probe_leaves_training_unchanged(tmp_path: Path, cache_dir: Path) -> None:
    for name, enabled in (("off", "false"), ("on", "true")):
        done = run_train(
            tmp_path / name, cache_dir, "trainer.max_steps=10", f"callbacks.memory_probe.enabled={enabled}"
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "largest training batch fits: 64 sentences, 2048 padded tokens"
        in (tmp_path / "on" / "train.log").read_text()
    )
    assert step_losses(tmp_path / "on") == step_losses(tmp_path / "off")


def test_out_of_memory_shows_at_step_zero_with_the_budget_to_lower(tmp_path: Path, cache_dir: Path) -> None:
    """A real allocation failure: the address space is capped, and the whole corpus fits one token budget."""

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (5 * 2**30, 5 * 2**30))

    run_dir = tmp_path / "run"
    done = run_train(
        run_dir,
        cache_dir,
        "callbacks.memory_probe.enabled=true",
        "data.max_tokens=1000000",
        preexec_fn=cap_memory,
    )
    assert done.returncode == OutOfMemoryAtStart.exit_code, done.stderr[-3000:]
    one_paragraph(
        done.stderr, "The largest training batch", "does not fit in memory on cpu", "data.max_tokens=500000"
    )
    assert_nothing_written(run_dir)


# Adam moves every weight by about the learning rate: after one step of 1e37 the logits overflow to inf.
DIVERGING = ["model.optimizer.lr=1e37", "trainer.gradient_clip_val=0"]


def test_non_finite_loss_stops_with_the_step_and_batch(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, *DIVERGING)
    assert done.returncode == TrainingDiverged.exit_code, done.stderr[-3000:]
    line = one_paragraph(
        done.stderr,
        "at step 1 (epoch 0, batch 1:",
        "training pairs, indices",
        "the last good checkpoint is none yet",
        "Lower model.optimizer.lr",
    )
    # lr=1e37 overflows the first update; whether the next loss is inf or nan depends on the CPU's kernels.
    assert re.search(r"The training loss became (nan|inf|-inf) at step 1 ", line), line
    assert not (run_dir / "results.json").exists() and not list(run_dir.glob("checkpoints/*"))
    assert not list(run_dir.glob("spm.*")) and not (run_dir / "config.yaml").exists()


def test_non_finite_loss_keeps_the_last_good_checkpoint(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_train(
        run_dir,
        cache_dir,
        *DIVERGING,
        "+callbacks.model_checkpoint.every_n_train_steps=1",
        "callbacks.model_checkpoint.monitor=null",
    )
    assert done.returncode == TrainingDiverged.exit_code, done.stderr[-3000:]
    line = one_paragraph(
        done.stderr,
        "The training loss became",
        f"the last good checkpoint is {run_dir}/checkpoints/last.ckpt",
    )
    step = int(line.split(" at step ")[1].split()[0])
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == step  # written after the last finite step, before the failing one
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())
    assert not (run_dir / "results.json").exists()


def bundled_corpus(
    folder: Path, edit: Callable[[str, str, list[str]], list[str] | bytes] | None = None
) -> Path:
    """2,000/40/40 pairs of the bundled corpus as plain files DIR/{split}.{de,en}, optionally edited."""
    folder.mkdir()
    for split, size in (("train", 2000), ("valid", 40), ("test", 40)):
        for side, lang in (("src", "de"), ("tgt", "en")):
            lines = (
                gzip.decompress((PROJECT_ROOT / "data" / "bundled" / f"{split}.{side}.gz").read_bytes())
                .decode()
                .splitlines()[:size]
            )
            content = edit(split, lang, lines) if edit else lines
            path = folder / f"{split}.{lang}"
            path.write_bytes(content if isinstance(content, bytes) else ("\n".join(content) + "\n").encode())
    return folder


def corpus_overrides(folder: Path) -> list[str]:
    return [
        "data=parallel",
        f"data.path={folder}",
        "data.src_lang=de",
        "data.tgt_lang=en",
        "data.vocab.vocab_size=300",
    ]


def drop_last_target_line(split: str, lang: str, lines: list[str]) -> list[str]:
    return lines[:-1] if (split, lang) == ("valid", "en") else lines


def empty_lines_4_and_9(split: str, lang: str, lines: list[str]) -> list[str]:
    return [
        "" if (split, lang, i) in {("train", "de", 3), ("train", "en", 8)} else line
        for i, line in enumerate(lines)
    ]


def bad_utf8_line_7(split: str, lang: str, lines: list[str]) -> list[str] | bytes:
    if (split, lang) != ("train", "en"):
        return lines
    data = [line.encode() for line in lines]
    data[6] = b"caf\xe9 latin-1"
    return b"\n".join(data) + b"\n"


def empty_file(split: str, lang: str, lines: list[str]) -> list[str] | bytes:
    return b"" if split == "train" else lines


CORPUS_ERRORS = {
    "line counts differ": (
        drop_last_target_line,
        [],
        ["Line counts differ:", "valid.de has 40 lines but", "valid.en has 39"],
    ),
    "empty corpus": (empty_file, [], ["Empty corpus:", "train.de and", "have no lines"]),
    "empty lines as error": (
        empty_lines_4_and_9,
        ["data.empty_lines=error"],
        ["2 line(s) with an empty side (lines 4, 9)", "data.empty_lines=skip"],
    ),
    "invalid UTF-8": (bad_utf8_line_7, [], ["train.en, line 7: invalid UTF-8", "iconv"]),
}


@pytest.mark.parametrize("case", CORPUS_ERRORS, ids=lambda c: c.replace(" ", "_"))
def test_bad_corpus_gives_one_paragraph_and_writes_nothing(
    case: str, tmp_path: Path, cache_dir: Path
) -> None:
    edit, extra, fragments = CORPUS_ERRORS[case]
    corpus = bundled_corpus(tmp_path / "corpus", edit)
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, *corpus_overrides(corpus), *extra)
    assert done.returncode == InputError.exit_code, done.stderr[-3000:]
    one_paragraph(done.stderr, *fragments)
    assert_nothing_written(run_dir)


def test_missing_file_gives_one_paragraph_and_writes_nothing(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, *corpus_overrides(tmp_path / "nowhere"))
    assert done.returncode == InputError.exit_code
    one_paragraph(done.stderr, "Missing corpus file", "train.de", "data.path=")
    assert_nothing_written(run_dir)


def test_empty_lines_are_skipped_and_long_pairs_dropped_or_truncated_with_counts(
    tmp_path: Path, cache_dir: Path
) -> None:
    corpus = bundled_corpus(tmp_path / "corpus", empty_lines_4_and_9)
    dropped = run_train(tmp_path / "dropped", cache_dir, *corpus_overrides(corpus), "data.max_length=12")
    assert dropped.returncode == 0, dropped.stderr[-3000:]
    log = (tmp_path / "dropped" / "train.log").read_text()
    assert "train: skipped 2 pairs with an empty side (lines 4, 9 of" in log
    count = int(log.split("dropped ")[1].split()[0])
    assert 0 < count < 1998 and "longer than data.max_length=12" in log
    cut = run_train(
        tmp_path / "cut", cache_dir, *corpus_overrides(corpus), "data.max_length=12", "data.too_long=truncate"
    )
    assert cut.returncode == 0, cut.stderr[-3000:]
    assert (
        f"truncated {count} training pairs to data.max_length=12 tokens"
        in (tmp_path / "cut" / "train.log").read_text()
    )


@pytest.mark.parametrize(
    "override,fragments",
    [
        (
            "encoder=lstmm",
            ["Could not find 'encoder/lstmm'", "Available options", "attention", "gru", "lstm"],
        ),
        (
            "encoder.hidden_sizee=8",
            ["Could not override 'encoder.hidden_sizee'", "Key 'hidden_sizee' is not in struct"],
        ),
        ("data.too_long=cut", ["data.too_long='cut' is not an option: use one of drop, truncate"]),
        (
            "data=parallel",  # a corpus of one's own, its folder and languages not given
            ["error: the config leaves data.path, data.src_lang, data.tgt_lang unset", "data.path=..."],
        ),
    ],
)
def test_bad_config_names_the_key_and_the_choices(
    override: str, fragments: list[str], tmp_path: Path, cache_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, override)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr[-2000:])
    assert_nothing_written(run_dir)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    done = run_train(run_dir, cache_dir, "test=false")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_resume_refuses_a_checkpoint_of_other_vocabularies(
    finished_run: Path, tmp_path: Path, cache_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    done = run_train(
        run_dir, cache_dir, f"ckpt_path={finished_run}/checkpoints/last.ckpt", "data.vocab.vocab_size=400"
    )
    assert done.returncode == InputError.exit_code, done.stderr[-3000:]
    one_paragraph(done.stderr, "was trained with other sentencepiece vocabularies", "its config.yaml")
    assert_nothing_written(run_dir)


def test_resume_refuses_a_corrupted_checkpoint(finished_run: Path, tmp_path: Path, cache_dir: Path) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((finished_run / "checkpoints" / "last.ckpt").read_bytes()[:5000])  # a write cut short
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, f"ckpt_path={broken}")
    assert done.returncode == InputError.exit_code, done.stderr[-3000:]
    one_paragraph(done.stderr, f"Cannot read checkpoint {broken}", "corrupted")
    assert_nothing_written(run_dir)


def test_ckpt_path_last_without_a_checkpoint_says_where_to_resume(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, "ckpt_path=last")
    assert done.returncode == InputError.exit_code
    one_paragraph(
        done.stderr, f"ckpt_path=last: there is no {run_dir}/checkpoints/last.ckpt", "hydra.run.dir="
    )
    assert_nothing_written(run_dir)


def test_resume_true_without_a_checkpoint_starts_fresh(tmp_path: Path, cache_dir: Path) -> None:
    done = run_train(tmp_path / "run", cache_dir, "resume=true", "test=false")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resume=true: no" in (tmp_path / "run" / "train.log").read_text()


def test_a_full_disk_at_the_first_checkpoint_ends_in_one_paragraph(
    small_disk: Path, fill_disk, tmp_path: Path, cache_dir: Path
) -> None:
    """The run folder's disk fills while the first checkpoint is written: exit 74, no traceback, no partial file."""
    fill_disk(small_disk, leave=400 * 1024)  # room for Hydra's files and the logs, not for a checkpoint
    run_dir = small_disk / "run"
    done = subprocess.run(
        train_command(run_dir, cache_dir, "debug=tiny"),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == DiskFull.exit_code, done.stderr[-3000:]
    one_paragraph(
        done.stderr, f"The disk is full: writing {run_dir / 'checkpoints'}", "MiB free", "resume=true"
    )
    assert not [p for p in run_dir.rglob("*") if p.suffix in (".ckpt", ".tmp")]
