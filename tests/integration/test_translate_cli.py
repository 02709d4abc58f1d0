"""seq2seq-translate and seq2seq-evaluate on tiny checkpoints trained in this session."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
import torch

from seq2seq.cli.evaluate import main as evaluate_main
from seq2seq.cli.translate import main as translate_main
from seq2seq.config import PROJECT_ROOT
from seq2seq.inference.translator import Translator
from seq2seq.padding import MaskingStrategy, PackingStrategy
from seq2seq.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

EXACT = ["masking", "packing", "state_reset", "masking_uni", "attention"]
BUNDLED = PROJECT_ROOT / "data" / "bundled"


@pytest.fixture(scope="module")
def test_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first 60 test pairs as plain files, with one empty source line (and its reference) at line 4."""
    folder = tmp_path_factory.mktemp("text")
    src = gzip.decompress((BUNDLED / "test.src.gz").read_bytes()).decode().splitlines()[:60]
    ref = gzip.decompress((BUNDLED / "test.tgt.gz").read_bytes()).decode().splitlines()[:60]
    src[3] = ref[3] = ""
    (folder / "test.src").write_text("\n".join(src) + "\n")
    (folder / "test.ref").write_text("\n".join(ref) + "\n")
    return folder / "test.src", folder / "test.ref"


def translate(checkpoint: Path, source: Path, output: Path, *options: str) -> list[str]:
    translate_main(
        ["--checkpoint", str(checkpoint), "--input", str(source), "--output", str(output), *options]
    )
    return output.read_text().splitlines()


@pytest.mark.parametrize("beam", ["1", "5"])
@pytest.mark.parametrize("name", EXACT)
def test_translation_does_not_depend_on_the_batch_size(
    name, beam, tiny_checkpoint, test_files, tmp_path
) -> None:
    source, _ = test_files
    one = translate(
        tiny_checkpoint(name), source, tmp_path / "one.txt", "--beam-size", beam, "--batch-size", "1"
    )
    many = translate(
        tiny_checkpoint(name), source, tmp_path / "many.txt", "--beam-size", beam, "--batch-size", "64"
    )
    assert one == many
    assert len(one) == 60 and one[3] == ""  # input order kept, the empty line passed through


def scores(checkpoint: Path, source: Path, reference: Path, output: Path, batch_size: str) -> list[float]:
    lines = translate(
        checkpoint, source, output, "--score", "--reference", str(reference), "--batch-size", batch_size
    )
    return [float(line.split("\t")[0]) for line in lines]


@pytest.mark.parametrize("name", EXACT)
def test_reference_scores_do_not_depend_on_the_batch_size(
    name, tiny_checkpoint, test_files, tmp_path
) -> None:
    source, reference = test_files
    one = scores(tiny_checkpoint(name), source, reference, tmp_path / "one.txt", "1")
    many = scores(tiny_checkpoint(name), source, reference, tmp_path / "many.txt", "64")
    # Float32 rounding differs with the batch shape; a summed log-probability of -100 nats may move by 2e-4.
    assert one == pytest.approx(many, rel=1e-5, abs=1e-4)
    assert all(value < 0 for value in one)


def test_naive_scores_change_with_the_batch(tiny_checkpoint, test_files, tmp_path) -> None:
    source, reference = test_files
    one = scores(tiny_checkpoint("naive"), source, reference, tmp_path / "one.txt", "1")
    many = scores(tiny_checkpoint("naive"), source, reference, tmp_path / "many.txt", "64")
    assert max(abs(a - b) for a, b in zip(one, many, strict=True)) > 1e-3


@pytest.mark.parametrize("batch_size", [1, 64])
def test_a_packing_checkpoint_translates_the_same_under_masking(
    batch_size, tiny_checkpoint, test_files
) -> None:
    """Exact strategies are interchangeable at serving time: packing's weights decode the same under masking."""
    loaded = load_checkpoint(tiny_checkpoint("packing"))
    sources = test_files[0].read_text().splitlines()
    translations = []
    for strategy in (PackingStrategy(), MaskingStrategy()):
        loaded.net.set_padding(strategy)
        translator = Translator(loaded.net, loaded.vocabs, batch_size=batch_size)
        translations.append([n_best[0][0] for n_best in translator.translate(sources, beam_size=5)])
    assert translations[0] == translations[1]


@pytest.mark.parametrize("name", ["packing", "attention"])
def test_beam_never_scores_below_greedy(name, tiny_checkpoint, test_files) -> None:
    """Compares the model scores of the token sequences each search produced (not re-tokenised text)."""
    loaded = load_checkpoint(tiny_checkpoint(name))
    translator = Translator(loaded.net, loaded.vocabs, batch_size=16)
    sources = test_files[0].read_text().splitlines()
    greedy = translator.translate(sources, beam_size=1)
    beam = translator.translate(sources, beam_size=5)
    # The same hypothesis scored in a batch of another shape may round differently: 1e-4, the bound of
    # --score across batch sizes (a 30-token translation moved by 2.8e-5 between beam and greedy).
    assert all(b[0][1].score >= g[0][1].score - 1e-4 for b, g in zip(beam, greedy, strict=True))
    assert sum(b[0][1].score for b in beam) > sum(g[0][1].score for g in greedy)  # and it does search


def test_n_best_lists_ranked_hypotheses(tiny_checkpoint, test_files, tmp_path) -> None:
    source, _ = test_files
    lines = translate(
        tiny_checkpoint("packing"), source, tmp_path / "nbest.txt", "--beam-size", "4", "--n-best", "3"
    )
    assert len(lines) == 60 * 3
    rows = [line.split("\t") for line in lines]
    assert [int(r[0]) for r in rows] == [i for i in range(60) for _ in range(3)]
    for i in range(0, len(rows), 3):
        scored = [float(r[2]) for r in rows[i : i + 3]]
        assert scored == sorted(scored, reverse=True)


def test_evaluate_bleu_equals_sacrebleu_by_hand_and_a_moved_checkpoint_works(
    tiny_checkpoint, test_files, tmp_path, capsys
) -> None:
    source, reference = test_files
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    shutil.copy(tiny_checkpoint("packing"), moved)  # no run directory, config or vocabulary beside it
    hypotheses, report = tmp_path / "hyp.txt", tmp_path / "eval.json"
    evaluate_main(
        [
            "--checkpoint",
            str(moved),
            "--src",
            str(source),
            "--ref",
            str(reference),
            "--json",
            str(report),
            "--hypotheses",
            str(hypotheses),
            "--beam-size",
            "3",
        ]
    )
    result = json.loads(report.read_text())
    assert json.loads(capsys.readouterr().out) == result
    by_hand = sacrebleu.corpus_bleu(hypotheses.read_text().splitlines(), [reference.read_text().splitlines()])
    assert result["bleu"] == pytest.approx(by_hand.score)
    assert result["bleu_signature"].startswith("nrefs:1|") and "chrf" in result and result["sentences"] == 60
    assert result["length_ratio"] > 0 and 0 <= result["exact_match"] <= 100


def test_evaluate_takes_a_list_of_length_penalties_and_prints_a_row_for_each(
    tiny_checkpoint, test_files, tmp_path, capsys
) -> None:
    source, reference = test_files
    report = tmp_path / "eval.json"
    evaluate_main(
        [
            "--checkpoint",
            str(tiny_checkpoint("packing")),
            "--src",
            str(source),
            "--ref",
            str(reference),
            "--json",
            str(report),
            "--beam-size",
            "3",
            "--alpha",
            "0,1.5",
        ]
    )
    result = json.loads(report.read_text())
    assert [row["alpha"] for row in result["by_alpha"]] == [0.0, 1.5]
    printed = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    header = printed.index(["alpha", "BLEU", "chrF", "length", "ratio", "exact", "%"])
    assert [row[0] for row in printed[header + 1 : header + 3]] == ["0", "1.5"]
    single = tmp_path / "single.json"
    evaluate_main(
        [
            "--checkpoint",
            str(tiny_checkpoint("packing")),
            "--src",
            str(source),
            "--ref",
            str(reference),
            "--json",
            str(single),
            "--beam-size",
            "3",
            "--alpha",
            "1.5",
        ]
    )
    assert json.loads(single.read_text())["bleu"] == pytest.approx(result["by_alpha"][1]["bleu"])
    with pytest.raises(SystemExit):
        evaluate_main(
            ["--checkpoint", "x.ckpt", "--src", str(source), "--ref", str(reference), "--alpha", "0,high"]
        )
    assert "give one number or a comma-separated list" in capsys.readouterr().err


def test_corrupted_checkpoint_gives_one_clear_error_and_no_output(
    tiny_checkpoint, test_files, tmp_path
) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(tiny_checkpoint("packing").read_bytes()[:1000])
    output = tmp_path / "out.txt"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seq2seq.cli.translate",
            "--checkpoint",
            str(broken),
            "--input",
            str(test_files[0]),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Cannot read checkpoint" in done.stderr and "Traceback" not in done.stderr
    assert not output.exists()


def test_weights_of_another_model_version_give_one_clear_error(tiny_checkpoint, test_files, tmp_path) -> None:
    # What an attention-encoder checkpoint from before rotary positions looks like to this version.
    checkpoint = torch.load(tiny_checkpoint("attention"), map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["net.encoder.old_positions.weight"] = torch.zeros(3)
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    output = tmp_path / "out.txt"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seq2seq.cli.translate",
            "--checkpoint",
            str(old),
            "--input",
            str(test_files[0]),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"The weights in {old} do not fit" in done.stderr and "old_positions" in done.stderr
    assert "Traceback" not in done.stderr and not output.exists()


@pytest.mark.parametrize("command", ["seq2seq-translate", "seq2seq-evaluate", "seq2seq-train"])
def test_console_scripts_have_help(command) -> None:
    executable = shutil.which(command)
    assert executable, f"{command} is not installed: pip install -e ."
    done = subprocess.run([executable, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and ("usage" in done.stdout.lower() or "Powered by Hydra" in done.stdout)


def test_a_checkpoint_that_names_the_padding_object_strategy_still_loads(tiny_checkpoint, tmp_path) -> None:
    # Checkpoints written before the rename keep `model.net.strategy` in their config.
    checkpoint = torch.load(tiny_checkpoint("packing"), map_location="cpu", weights_only=True)
    net_config = checkpoint["seq2seq"]["config"]["model"]["net"]
    net_config["strategy"] = net_config.pop("padding")
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    loaded = load_checkpoint(old)
    assert (
        type(loaded.net.padding).__name__ == "PackingStrategy"
        and loaded.net.encoder.padding is loaded.net.padding
    )
