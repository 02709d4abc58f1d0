"""Ranking and plotting a multirun folder from its job folders."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from seq2seq.sweeps.summary import format_table, load_jobs, plot, ranked, swept_keys


def make_job(sweep: Path, number: int, overrides: list[str], bleu: float | None) -> None:
    folder = sweep / str(number)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if bleu is not None:
        (folder / "results.json").write_text(json.dumps({"val/bleu": bleu, "val/loss": 1.0}))


def test_jobs_are_ranked_and_only_swept_keys_shown(tmp_path: Path) -> None:
    for number, (lr, encoder, bleu) in enumerate(
        [(0.001, "lstm", 20.0), (0.01, "gru", 35.5), (0.003, "lstm", None), (0.002, "gru", 30.0)]
    ):
        make_job(tmp_path, number, ["debug=tiny", f"model.optimizer.lr={lr}", f"encoder={encoder}"], bleu)
    make_job(
        tmp_path, 10, ["debug=tiny", "model.optimizer.lr=0.005", "encoder=gru"], 1.0
    )  # sorts after 3, not after 1
    jobs = load_jobs(tmp_path)
    assert [job.folder.name for job in jobs] == ["0", "1", "2", "3", "10"]
    assert swept_keys(jobs) == ["model.optimizer.lr", "encoder"]
    best = ranked(jobs, "val/bleu")
    assert [job.folder.name for job in best] == ["1", "3", "0", "10"]  # job 2 has no results
    assert next(job.folder.name for job in ranked(jobs, "val/bleu", maximize=False)) == "10"
    table = format_table(best, swept_keys(jobs), "val/bleu").splitlines()
    assert table[0].split() == ["rank", "job", "val/bleu", "model.optimizer.lr", "encoder"]
    assert table[2].split() == ["1", "1", "35.5", "0.01", "gru"]
    plot(best, swept_keys(jobs), "val/bleu", tmp_path / "summary.png")
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob("*.tmp"))
