"""Smoke tests: each benchmark script still runs end to end on tiny settings and writes its JSON."""

from __future__ import annotations

import gzip
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    """Runs a benchmark script as users do, from the repository root; it must succeed."""
    done = subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def benchmark_modules(monkeypatch: pytest.MonkeyPatch):
    """Imports a module of benchmarks/ as its scripts do (their folder first on sys.path); afterwards the
    path and every module loaded from that folder are gone again, so nothing leaks into the session."""
    folder = PROJECT_ROOT / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))
    yield importlib.import_module
    for name, module in list(sys.modules.items()):
        if folder in Path(getattr(module, "__file__", None) or "/").parents:
            del sys.modules[name]


def test_pad_fraction_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "pad.json"
    done = run_benchmark(
        "benchmarks/pad_fraction.py",
        "--corpus",
        "bundled",
        "--limit",
        "600",
        "--budget",
        "256",
        "--sentences",
        "8",
        "--out",
        str(out),
    )
    rows = json.loads(out.read_text())
    assert {row["method"] for row in rows} == {"random", "pool sort", "global sort", "ours"}
    assert len(rows) == 8 and all(0 <= row["pad_fraction"] < 1 for row in rows)
    by_method = {row["method"]: row["pad_fraction"] for row in rows if row["batching"] == "256 tokens"}
    assert by_method["ours"] < by_method["random"]
    assert "ours" in done.stdout


def test_drift_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "drift.json"
    run_benchmark("benchmarks/drift.py", "--batches", "1", "--batch-size", "3", "--out", str(out))
    rows = {(row["encoder"], row["strategy"]): row for row in json.loads(out.read_text())}
    assert len(rows) == 25
    assert rows[("lstm (bi)", "packing")]["final_drift"] < 1e-5 < rows[("lstm (bi)", "naive")]["final_drift"]
    assert (
        rows[("lstm (bi)", "masking")]["output_drift"]
        < 1e-5
        < rows[("lstm (bi)", "masking_outputs")]["output_drift"]
    )


def test_throughput_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    run_benchmark(
        "benchmarks/throughput.py",
        "--encoders",
        "gru",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--overrides",
        "debug=tiny",
        "--out",
        str(out),
    )
    (row,) = json.loads(out.read_text())
    assert row["bucketed"]["tokens_per_sec"] > 0 and row["random"]["tokens_per_sec"] > 0
    assert row["bucketed"]["pad_fraction"] < row["random"]["pad_fraction"]


def test_padded_eval_benchmark(tiny_checkpoint, tmp_path: Path) -> None:
    out = tmp_path / "padded.json"
    run_benchmark(
        "benchmarks/padded_eval.py",
        "--checkpoint",
        str(tiny_checkpoint("packing")),
        str(tiny_checkpoint("naive")),
        "--limit",
        "40",
        "--batch-size",
        "16",
        "--out",
        str(out),
    )
    exact, _naive = json.loads(out.read_text())
    assert exact["pad_random"] > exact["pad_sorted"]
    assert exact["changed_lines"] == 0  # packing: the batch does not matter


def test_beam_alpha_benchmark_scores_a_split_of_ones_own_corpus(tiny_checkpoint, tmp_path: Path) -> None:
    """`beam_alpha.py --corpus DIR --split valid --langs X Y`: greedy, then one beam search per alpha, on
    that corpus's split (gzipped, named by its languages), under a key that names the split."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for side, lang in (("src", "xx"), ("tgt", "yy")):
        with gzip.open(PROJECT_ROOT / "data" / "bundled" / f"valid.{side}.gz", "rt") as lines:
            head = lines.read().splitlines()[:16]
        with gzip.open(corpus / f"valid.{lang}.gz", "wt") as out_file:
            out_file.write("\n".join(head) + "\n")
    out = tmp_path / "beam.json"
    run_benchmark(
        "benchmarks/beam_alpha.py", "--corpus", str(corpus), "--split", "valid", "--langs", "xx", "yy",
        "--alpha", "0,1.5", "--beam-size", "3", "--checkpoint", f"tiny={tiny_checkpoint('packing')}",
        "--out", str(out),
    )  # fmt: skip
    ((key, found),) = json.loads(out.read_text()).items()
    assert key == "tiny (valid)" and found["split"] == "valid" and found["corpus"] == str(corpus)
    assert [(row["search"], row["alpha"]) for row in found["rows"]] == [
        ("greedy", 0.0),
        ("beam 3", 0.0),
        ("beam 3", 1.5),
    ]
    assert all(0 <= row["bleu"] <= 100 and row["length_ratio"] > 0 for row in found["rows"])


def test_strategy_cost_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    run_benchmark(
        "benchmarks/strategy_cost.py",
        "--encoders",
        "lstm",
        "--batches",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--overrides",
        "debug=tiny",
        "--out",
        str(out),
    )
    rows = {row["strategy"]: row for row in json.loads(out.read_text())}
    assert set(rows) == {"naive", "masking_outputs", "masking", "packing", "state_reset"}
    assert rows["naive"]["tokens_per_sec_vs_naive"] == 1.0
    assert all(row["encoder_forward_backward_ms"] > 0 and row["tokens_per_sec"] > 0 for row in rows.values())
    # packing steps over a pad only where a cut costs more than the pad steps it saves (tiny batches
    # often merge into masking's one call); naive also projects its target pads to the vocabulary
    assert rows["packing"]["pad_compute_fraction"] <= rows["masking"]["pad_compute_fraction"]
    assert rows["masking"]["pad_compute_fraction"] < rows["naive"]["pad_compute_fraction"] < 1


def test_gpu_throughput_benchmark_runs_its_settings_on_the_cpu(tmp_path: Path) -> None:
    """The GPU benchmark's code path (eager and compiled, fp32 and bf16) on the CPU, tiny settings."""
    out = tmp_path / "gpu.json"
    run_benchmark(
        "benchmarks/gpu_throughput.py",
        "--device",
        "cpu",
        "--models",
        "default",
        "--strategies",
        "masking",
        "packing",
        "--batches",
        "1",
        "--passes",
        "1",
        "--overrides",
        "debug=tiny",
        "--out",
        str(out),
    )
    rows = json.loads(out.read_text())
    assert {(row["strategy"], row["precision"], row["compiled"]) for row in rows} == {
        (strategy, precision, compiled)
        for strategy in ("masking", "packing")
        for precision in ("fp32", "bf16")
        for compiled in (False, True)
    }
    assert all(row["tokens_per_sec"] > 0 or "error" in row for row in rows)
    assert all("error" not in row for row in rows if not row["compiled"])


def test_profile_step_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    run_benchmark(
        "benchmarks/profile_step.py",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--overrides",
        "debug=tiny",
        "--out",
        str(out),
    )
    profile = json.loads(out.read_text())
    assert (
        set(profile["phases_ms"]) == {"collate", "forward", "backward", "optimizer"}
        and profile["step_ms"] > 0
    )
    times = [op["self_cpu_ms_per_step"] for op in profile["top_ops"]]
    assert times and times == sorted(times, reverse=True)
    assert any(op["op"].startswith("aten::") for op in profile["top_ops"])


def test_plots_from_committed_results(tmp_path: Path) -> None:
    run_benchmark("benchmarks/plots.py", "--docs", str(tmp_path))
    for name in (
        "pad_fraction.png",
        "tokens_per_sec.png",
        "learning_curve.png",
        "learning_curve_tatoeba.png",
    ):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_tatoeba_curve_names_each_recipe(benchmark_modules) -> None:
    """One line per framework and recipe: the shared model by its decoder, an experiment file by its name,
    a variant of either by its overrides (so that it does not overwrite the points of the row it varies)."""
    recipe_label = benchmark_modules("plots").recipe_label
    corpus = ["data=parallel", "data.path=D"]
    shared = {"framework": "opennmt", "recipe": "shared", "input_feeding": False, "corpus": corpus}
    assert recipe_label(shared) == "OpenNMT-py, shared model, no input feeding"
    own = {"framework": "ours-default", "recipe": "own", "input_feeding": None}
    assert recipe_label(own | {"corpus": corpus}) == "ours, default recipe"
    tuned = own | {"corpus": ["experiment=tatoeba_lstm", "data.path=D"]}
    assert recipe_label(tuned) == "ours, experiment=tatoeba_lstm"
    option = own | {"corpus": corpus, "overrides": ["decoder.input_feeding=true"]}
    assert recipe_label(option) == "ours, default recipe decoder.input_feeding=true"
    variant = shared | {"framework": "ours", "input_feeding": True, "overrides": ["encoder.dropout=0.1"]}
    assert recipe_label(variant) == "ours, shared model, input feeding encoder.dropout=0.1"


def test_components_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "components.json"
    done = run_benchmark(
        "benchmarks/components.py",
        "--rows",
        "default",
        "decoder/attention=none",
        "--epochs",
        "1",
        "--seeds",
        "1",
        "2",
        "--overrides",
        "debug=tiny",
        "--out",
        str(out),
    )
    table = json.loads(out.read_text())
    assert table["epochs"] == 1 and set(table["rows"]) == {"default", "decoder/attention=none"}
    row = table["rows"]["decoder/attention=none"]
    assert row["overrides"] == ["decoder/attention=none"] and set(row["seeds"]) == {"1", "2"}
    assert all(run["extra_overrides"] == ["debug=tiny"] for run in row["seeds"].values())
    bleus = [run["test/bleu"] for run in row["seeds"].values()]
    assert row["test/bleu"] == pytest.approx(sum(bleus) / 2) and row["test/bleu_range"] == [
        min(bleus),
        max(bleus),
    ]
    assert "| decoder/attention=none |" in done.stdout


def test_padding_lab_runs_a_small_grid_and_checks_the_exact_strategies(tmp_path: Path) -> None:
    """On a corpus of the user's own (DIR/{train,valid,test}.{de,en}), figures beside the JSON file."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, part in (("train", slice(0, 2000)), ("valid", slice(0, 40)), ("test", slice(-40, None))):
        for side, lang in (("src", "de"), ("tgt", "en")):
            bundled = PROJECT_ROOT / "data" / "bundled" / f"{split}.{side}.gz"
            lines = gzip.decompress(bundled.read_bytes()).decode().splitlines()[part]
            (corpus / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    out = tmp_path / "study" / "lab.json"
    out.parent.mkdir()
    run_benchmark(
        "benchmarks/padding_lab.py",
        "--encoders",
        "lstm",
        "--attention",
        "attention",
        "--batching",
        "bucketed",
        "--strategies",
        "naive",
        "packing",
        "--limit",
        "24",
        "--batch-size",
        "8",
        "--overrides",
        "debug=tiny",
        "data=parallel",
        f"data.path={corpus}",
        "data.src_lang=de",
        "data.tgt_lang=en",
        "data.vocab.vocab_size=300",
        "--out",
        str(out),
    )
    cells = json.loads(out.read_text())["cells"]
    assert set(cells) == {"lstm/attention/bucketed/naive", "lstm/attention/bucketed/packing"}
    assert {cell["test_file"] for cell in cells.values()} == {str(corpus / "test.de")}
    packing = cells["lstm/attention/bucketed/packing"]
    assert packing["claims_exact"] and packing["exact_holds"]
    levels = [row["pad_fraction"] for row in packing["dial"]]
    assert levels[0] == 0.0 and levels == sorted(levels) and 0.8 < levels[-1] < 0.95
    assert set(packing["served_with"]) == {"naive", "masking_outputs", "masking", "packing", "state_reset"}
    assert packing["served_with"]["masking"]["bleu"] == pytest.approx(packing["dial"][0]["bleu"])
    assert packing["served_with"]["state_reset"]["bleu"] == pytest.approx(packing["dial"][0]["bleu"])
    assert not cells["lstm/attention/bucketed/naive"]["claims_exact"]
    for name in ("padding_lab_bleu", "padding_lab_changed"):
        assert (out.parent / f"{name}.png").stat().st_size > 0


def test_peers_learning_curve_copies_the_newest_complete_checkpoint_at_each_second(
    tmp_path: Path, benchmark_modules
) -> None:
    """`toolkits.harness.train_for` on a real process that writes checkpoints at known times (no framework needed).

    Only bounds that no delay can break are asserted: a checkpoint exists no earlier than the writer's
    sleeps allow and no later than the snapshot that found it; the snapshots leave the writer seconds
    of slack, so a busy CPU delays the writes without making the test fail.
    """
    train_for = benchmark_modules("toolkits.harness").train_for

    writer = (
        "import pathlib, time\n"
        "folder = pathlib.Path('ckpt'); folder.mkdir()\n"
        "time.sleep(0.5); (folder / 'step1.pt').write_text('first')\n"
        "time.sleep(5.0); (folder / 'step2.pt').write_text('second')\n"
        "time.sleep(60)\n"
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    snapshots = train_for([sys.executable, "-c", writer], run_dir, "ckpt/*.pt", [0.2, 4.0, 9.0], env={})
    assert [s["at_s"] for s in snapshots] == [0.2, 4.0, 9.0]
    assert snapshots[0]["path"] is None  # before the writer's first sleep ends: nothing can be saved
    assert [s["path"].read_text() for s in snapshots[1:]] == ["first", "second"]
    first, second = snapshots[1]["saved_s"], snapshots[2]["saved_s"]
    assert 0.5 <= first <= 4.0 and first + 5.0 <= second <= 9.0
    assert (tmp_path / "run-train.log").exists()


def test_peers_learning_curve_gives_a_training_that_ended_by_itself_its_last_checkpoint_at_the_points_left(
    tmp_path: Path, benchmark_modules
) -> None:
    """A run with its own time budget stops before the curve's last point: those points score its last
    checkpoint, and one that failed is still an error."""
    train_for = benchmark_modules("toolkits.harness").train_for
    writer = "import pathlib\nfolder = pathlib.Path('ckpt'); folder.mkdir(); (folder / 'last.pt').write_text('end')\n"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    snapshots = train_for([sys.executable, "-c", writer], run_dir, "ckpt/*.pt", [30.0, 60.0], env={})
    assert [s["at_s"] for s in snapshots] == [30.0, 60.0]
    assert [s["path"].read_text() for s in snapshots] == ["end", "end"]
    with pytest.raises(SystemExit, match="exited with code 3 before the budget"):
        train_for([sys.executable, "-c", "raise SystemExit(3)"], run_dir, "ckpt/*.pt", [30.0], env={})


def test_peers_at_equal_steps_waits_for_the_training_to_end_and_takes_its_last_checkpoint(
    tmp_path: Path, benchmark_modules
) -> None:
    """`train_for` with no curve (`--steps`): the training stops by itself, and a failed one is reported."""
    train_for = benchmark_modules("toolkits.harness").train_for

    writer = (
        "import pathlib, time\n"
        "folder = pathlib.Path('ckpt'); folder.mkdir()\n"
        "(folder / 'step1.pt').write_text('first'); time.sleep(1.0)\n"
        "(folder / 'step2.pt').write_text('last')\n"
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (taken,) = train_for([sys.executable, "-c", writer], run_dir, "ckpt/*.pt", [], env={})
    assert taken["path"].read_text() == "last" and taken["at_s"] >= 1.0
    with pytest.raises(SystemExit, match="training exited with code 3; see"):
        train_for([sys.executable, "-c", "raise SystemExit(3)"], run_dir, "ckpt/*.pt", [], env={})


def test_peers_runs_on_a_corpus_of_ones_own_with_its_own_test_references(tmp_path: Path) -> None:
    """`peers.py --data ...`: the corpus chosen by data overrides, its pieces written for the peers, our
    run trained and decoded on it, BLEU against that corpus's test split (not the bundled one)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    bundled = PROJECT_ROOT / "data" / "bundled"
    for split, count in (("train", 400), ("valid", 20), ("test", 12)):
        for side, lang in (("src", "xx"), ("tgt", "yy")):
            with gzip.open(bundled / f"{split}.{side}.gz", "rt") as lines:
                lines = lines.read().splitlines()[:count]
            (corpus / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    out = tmp_path / "peers.json"
    data = ["data=parallel", f"data.path={corpus}", "data.src_lang=xx", "data.tgt_lang=yy"]
    data += ["data.vocab.vocab_size=200", f"paths.cache_dir={tmp_path / 'cache'}"]
    tiny = ["encoder.hidden_size=8", "decoder.hidden_size=8", "model.net.embedding_dim=8"]
    tiny += ["trainer.limit_val_batches=0", "trainer.log_every_n_steps=2"]
    # --steps, not a time budget: a slow or busy CPU cannot leave the run without a checkpoint to score.
    run_benchmark(
        "benchmarks/peers.py", "--tools", "ours", "--steps", "20",
        "--work", str(tmp_path / "work"), "--out", str(out), "--data", *data, "--overrides", *tiny,
    )  # fmt: skip
    (row,) = json.loads(out.read_text())
    assert row["framework"] == "ours" and row["corpus"] == data and row["test_bleu"] is not None
    assert row["steps"] == 20 and row["budget_s"] is None and row["overrides"] == tiny
    (scored,) = (tmp_path / "work" / "runs").glob("*/ours-feed1/curve/*.ckpt")
    assert torch.load(scored, map_location="cpu", weights_only=False)["global_step"] == 20
    assert row["machine"]["cpu_capability"] and row["machine"]["matmul_gflops"] > 0  # where it was timed
    (pieces,) = (tmp_path / "work" / "data").iterdir()
    assert len((pieces / "test.tgt").read_text().splitlines()) == 12
    (hypotheses,) = (tmp_path / "work" / "runs").glob("*/ours-feed1/curve/*.hyp")
    assert len(hypotheses.read_text().splitlines()) == 12  # the corpus's own test split, decoded


@pytest.mark.parametrize("split", ["train", "test"])
def test_pad_compute_benchmark(tmp_path: Path, split: str) -> None:
    out = tmp_path / "pad_compute.json"
    run_benchmark(
        "benchmarks/pad_compute.py",
        "--max-tokens",
        "2048",
        "--limit",
        "3",
        "--split",
        split,
        "--out",
        str(out),
    )
    (row,) = json.loads(out.read_text())
    assert row["corpus"] == "bundled" and row["split"] == split and row["batches"] == 3
    # Pads cost less than their share. A 1,000-pair test split has too few pairs per length to bucket finely.
    assert 0 < row["pad_compute_fraction"] < row["pad_fraction"] < (0.1 if split == "train" else 0.3)


def test_serve_load_benchmark_measures_both_batchings_and_the_soak(tiny_checkpoint, tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    run_benchmark(
        "benchmarks/serve_load.py",
        *(
            "--checkpoint",
            str(tiny_checkpoint("masking")),
            "--clients",
            "1",
            "4",
            "--one-sentence-clients",
            "4",
        ),
        *("--seconds", "2", "--rounds", "2", "--soak-clients", "2", "--soak-seconds", "2", "--threads", "1"),
        *("--out", str(out), "--docs", str(tmp_path)),
    )
    result = json.loads(out.read_text())
    assert [row["round"] for row in result["rows"]] == [0, 0, 0, 1, 1, 1]  # the batchings take turns
    rows = {(row["batching"], row["clients"]): row for row in result["medians"]}
    assert set(rows) == {("dynamic", 1), ("dynamic", 4), ("one sentence", 4)}
    assert all(row["rounds"] == 2 for row in rows.values())
    low, high = rows[("dynamic", 4)]["sentences_per_s_range"]
    assert low <= rows[("dynamic", 4)]["sentences_per_s"] <= high
    assert list(result["speedup"]) == ["4"] and len(result["speedup"]["4"]["rounds"]) == 2
    assert all(row["errors"] == 0 and row["sentences_per_s"] > 0 for row in rows.values())
    assert rows[("one sentence", 4)]["mean_batch"] == 1.0  # --max-tokens 1: never two sentences in a batch
    assert rows[("dynamic", 1)]["p50_ms"] <= rows[("dynamic", 1)]["p99_ms"]
    assert all(0 < row["model_busy"] < 1.1 for row in rows.values())  # edge batches count whole
    assert result["soak"]["rss_start_mb"] > 0 and result["soak"]["errors"] == 0
    assert [alone["round"] for alone in result["alone_ms"]] == [0, 1]  # the idle baseline, every round
    assert all(alone["p50"] > 0 for alone in result["alone_ms"])
    assert len(result["idle_ratio"]["rounds"]) == 2 and result["idle_ratio"]["median"] > 0
    assert (tmp_path / "serve_load.png").stat().st_size > 0


def test_peers_append_tells_rows_of_two_experiment_files_apart(benchmark_modules) -> None:
    """`--append --data experiment=...`: the recipe chosen in the corpus overrides makes a row of its own,
    so a second recipe's run does not replace the first's."""
    row_key = benchmark_modules("peers").row_key
    row = {"framework": "ours-default", "overrides": [], "input_feeding": None, "steps": None}
    lstm = row | {"corpus": ["experiment=tatoeba_lstm", "data.path=D"]}
    attention = row | {"corpus": ["experiment=tatoeba_attention", "data.path=D"]}
    assert row_key(lstm) != row_key(attention)
    assert row_key(lstm) == row_key(dict(lstm))
