"""How seq2seq-serve holds up under load: sentences/s and latency at 1-128 concurrent clients, on loopback.

Starts `seq2seq-serve` on the checkpoint, then runs closed-loop clients (each sends one test sentence
per request, waits for the answer, sends the next) for `--seconds` at each client count: wrk's
connections (Debian's `wrk`, `benchmarks/wrk/translate.lua`), a C load generator that leaves the shared
cores to the server (an httpx client in Python took a measurable share of them),
once with dynamic batching (the server's defaults) and once with `--max-tokens 1`, one sentence per
batch; `--rounds N` runs both N times, taking turns, and reports each row's median and the speedup
of dynamic batching round by round, since on a shared VM one row moved by up to a fifth between runs.
Then a soak at `--soak-clients` for `--soak-seconds`, with the server's resident memory at its
start and end. The server runs with jemalloc preloaded where Debian's libjemalloc2 is installed
(`--preload`): under glibc's malloc its memory crept up for minutes under a steady load. The idle
baseline is `Translator.translate` on one sentence at a time in this process, the model call
`seq2seq-translate` makes for a sentence alone, measured at the start of every round while no server
runs; `idle_ratio` is the 1-client p50 of the round's dynamic server over it.

    python benchmarks/serve_load.py --checkpoint CKPT --corpus ../shared/data/tatoeba-deu-eng --langs de en
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import torch
from common import RESULTS, machine, write_json
from prometheus_client.parser import text_string_to_metric_families

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.corpus import read_parallel
from seq2seq.inference.translator import Translator
from seq2seq.training.checkpoint import load_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument(
        "--corpus", type=Path, default=PROJECT_ROOT / "data" / "bundled", help="its test split"
    )
    parser.add_argument("--langs", nargs=2, default=["src", "tgt"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument(
        "--one-sentence-clients", nargs="*", type=int, default=[1, 32], help="with --max-tokens 1"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="per client count")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs of every client row, the two batchings taking turns; the tables give each row's median "
        "(on a shared 2-core VM one row moved by up to a fifth between runs)",
    )
    parser.add_argument("--soak-clients", type=int, default=32)
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="0: no soak")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preload",
        default=JEMALLOC if Path(JEMALLOC).exists() else "",
        help=f"a malloc for the server (LD_PRELOAD; default {JEMALLOC}, Debian's libjemalloc2, when installed; '' for glibc's)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    parser.add_argument("--docs", type=Path, default=PROJECT_ROOT / "docs", help="where serve_load.png goes")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sentences = [s for s in read_parallel(args.corpus, "test", *args.langs).src if s.strip()]
    torch.set_num_threads(args.threads)
    result = {"checkpoint": str(args.checkpoint), "beam_size": args.beam_size, "threads": args.threads}
    result["preload"] = args.preload
    result |= {"machine": machine(), "alone_ms": [], "rows": []}
    alone = Alone(args, sentences)
    for round_ in range(args.rounds):
        result["alone_ms"].append(alone.measure() | {"round": round_})
        print(
            f"\nround {round_}: one sentence alone (Translator.translate) p50 {result['alone_ms'][-1]['p50']:.1f} ms"
        )
        print(
            f"{'batching':<13} {'clients':>7} {'sent/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} {'batch':>6} {'busy':>5}"
        )
        for mode, counts, options in (
            ("dynamic", args.clients, []),
            ("one sentence", args.one_sentence_clients, ["--max-tokens", "1"]),
        ):
            with serving(args, options) as server:
                for clients in counts:
                    row = {"batching": mode, "clients": clients, "round": round_}
                    row |= server.load(clients, args.seconds, sentences)
                    result["rows"].append(row)
                    print_row(row)
                    write_json(args.out, result)
    result["medians"], result["speedup"] = medians(result["rows"]), speedups(result["rows"])
    result["idle_ratio"] = idle_ratios(result["rows"], result["alone_ms"])
    print(f"\nmedians of {args.rounds} round(s)")
    for row in result["medians"]:
        print_row(row)
    for clients, ratios in result["speedup"].items():
        print(
            f"{clients} clients: dynamic / one sentence {ratios['median']:.2f}x (rounds: {ratios['rounds']})"
        )
    if result["idle_ratio"]:
        ratios = result["idle_ratio"]
        print(f"1 client: p50 / one sentence alone {ratios['median']:.2f}x (rounds: {ratios['rounds']})")
    if args.soak_seconds > 0:
        with serving(args, []) as server:
            start_mb = server.rss_mb()
            soak = server.load(args.soak_clients, args.soak_seconds, sentences, rss_every_s=10)
            result["soak"] = soak | {
                "clients": args.soak_clients,
                "rss_start_mb": start_mb,
                "rss_end_mb": server.rss_mb(),
            }
        print(
            f"soak: {result['soak']['rss_start_mb']:.0f} -> {result['soak']['rss_end_mb']:.0f} MB, {soak['errors']} errors"
        )
    write_json(args.out, result)
    plot(result, args.docs / "serve_load.png")


MEDIAN_KEYS = ("sentences_per_s", "p50_ms", "p95_ms", "p99_ms", "mean_batch", "model_busy")


def medians(rows: list[dict]) -> list[dict]:
    """One row per batching and client count: the rounds' median of each figure, their sentences/s range
    and their errors added up."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["batching"], row["clients"]), []).append(row)
    return [
        {"batching": mode, "clients": clients, "rounds": len(runs)}
        | {key: statistics.median(run[key] for run in runs) for key in MEDIAN_KEYS}
        | {
            "sentences_per_s_range": [
                min(r["sentences_per_s"] for r in runs),
                max(r["sentences_per_s"] for r in runs),
            ],
            "errors": sum(run["errors"] for run in runs),
        }
        for (mode, clients), runs in groups.items()
    ]


def speedups(rows: list[dict]) -> dict[int, dict]:
    """For each client count run both ways: dynamic batching's sentences/s over one-sentence batches',
    round by round (the two servers of a round ran back to back), and the median of those."""
    rate = {(r["batching"], r["clients"], r["round"]): r["sentences_per_s"] for r in rows}
    found = {}
    for batching, clients, round_ in sorted(rate):
        if batching == "dynamic" and ("one sentence", clients, round_) in rate:
            found.setdefault(clients, []).append(
                rate[batching, clients, round_] / rate["one sentence", clients, round_]
            )
    return {
        clients: {"median": statistics.median(ratios), "rounds": [round(r, 2) for r in ratios]}
        for clients, ratios in found.items()
    }


def idle_ratios(rows: list[dict], alone: list[dict]) -> dict:
    """Round by round, the dynamic server's 1-client p50 over the p50 of a sentence alone measured at the
    start of that round (the VM's speed moves between rounds), and the median of those."""
    baseline = {a["round"]: a["p50"] for a in alone}
    ratios = [
        r["p50_ms"] / baseline[r["round"]]
        for r in rows
        if r["batching"] == "dynamic" and r["clients"] == 1 and r["round"] in baseline
    ]
    return {"median": statistics.median(ratios), "rounds": [round(r, 2) for r in ratios]} if ratios else {}


class Alone:
    """The model call `seq2seq-translate` makes for one sentence alone, in this process."""

    def __init__(self, args: argparse.Namespace, sentences: list[str]) -> None:
        loaded = load_checkpoint(args.checkpoint)
        self.translator = Translator(loaded.net, loaded.vocabs, "cpu", batch_size=1)
        self.beam_size = args.beam_size
        self.chosen = random.Random(args.seed).sample(sentences, min(205, len(sentences)))

    def measure(self) -> dict[str, float]:
        """Milliseconds of `Translator.translate` on one sentence at a time (200 sentences, after 5 untimed)."""
        times = []
        for i, sentence in enumerate(self.chosen):
            start = time.perf_counter()
            self.translator.translate([sentence], self.beam_size)
            if i >= 5:
                times.append(1000 * (time.perf_counter() - start))
        return {"p50": statistics.median(times), "mean": statistics.fmean(times)}


@contextmanager
def serving(args: argparse.Namespace, options: list[str]) -> Iterator[Server]:
    """A started `Server`, stopped afterwards."""
    with tempfile.TemporaryFile("w+") as log:
        server = Server(args, options, log)
        server.start()
        try:
            yield server
        finally:
            server.stop()


class Server:
    """`seq2seq-serve` in a subprocess on a free loopback port; `start` returns once /ready answers 200."""

    def __init__(self, args: argparse.Namespace, options: list[str], log: IO[str]) -> None:
        self.log = log  # the server's output, shown if it fails to start
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url, self.args = f"http://127.0.0.1:{self.port}", args
        self.command = [
            sys.executable, "-m", "seq2seq.cli.serve", "--checkpoint", str(args.checkpoint), "--port", str(self.port),
            "--threads", str(args.threads), "--max-queue", "100000", *options,
        ]  # fmt: skip

    def start(self) -> None:
        env = os.environ | ({"LD_PRELOAD": self.args.preload} if self.args.preload else {})
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise SystemExit(f"error: seq2seq-serve did not start: {self.log.read()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def rss_mb(self) -> float:
        """The server's resident memory."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def batches(self) -> tuple[float, float, float]:
        """(batches decoded, sentences in them, the model's seconds on them) so far, from /metrics."""
        text = httpx.get(f"{self.url}/metrics").text
        found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        return (
            found["seq2seq_batch_sentences_count"],
            found["seq2seq_batch_sentences_sum"],
            found["seq2seq_batch_seconds_sum"],
        )

    def load(self, clients: int, seconds: float, sentences: list[str], rss_every_s: float = 0) -> dict:
        """`clients` closed-loop clients for `seconds`: sentences/s, latency percentiles, errors, mean batch,
        the share of the time the model was decoding (`model_busy`: what is left is the HTTP turnaround
        between batches), and with `rss_every_s`, the server's resident memory at that interval (`rss_mb`)."""
        before, window = self.batches(), time.monotonic()
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not stop.wait(rss_every_s):
                samples.append((round(time.monotonic() - start, 1), self.rss_mb()))

        sampler = threading.Thread(target=sample, daemon=True)
        if rss_every_s > 0:
            sampler.start()
        try:
            summary = closed_loop(self.url, clients, seconds, sentences, self.args)
        finally:
            stop.set()
        after, window = self.batches(), time.monotonic() - window
        batches, batched, busy = (a - b for a, b in zip(after, before, strict=True))
        errors = summary["socket_errors"] + summary["non_2xx"]
        answered = summary["responses"] - summary["non_2xx"]
        duration = summary["duration_us"] / 1e6
        return {
            "seconds": duration,
            "sentences": answered,
            "sentences_per_s": answered / duration,
            "p50_ms": summary["p50_us"] / 1000,
            "p95_ms": summary["p95_us"] / 1000,
            "p99_ms": summary["p99_us"] / 1000,
            "errors": errors,
            "mean_batch": batched / batches if batches else float("nan"),
            "model_busy": busy / window,  # batches cut by the window's edges count whole: about 1% either way
        } | ({"rss_mb": samples} if rss_every_s > 0 else {})


WRK_SCRIPT = Path(__file__).parent / "wrk" / "translate.lua"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"  # Debian's libjemalloc2 (x86-64)


def closed_loop(
    url: str, clients: int, seconds: float, sentences: list[str], args: argparse.Namespace
) -> dict[str, float]:
    """wrk with `clients` connections for `seconds`, each request a random test sentence: its JSON summary."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as bodies:
        for sentence in sentences:
            bodies.write(json.dumps({"text": sentence, "beam_size": args.beam_size}) + "\n")
        bodies.flush()
        done = subprocess.run(
            [
                "wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "120s",
                "-s", str(WRK_SCRIPT), url, "--", bodies.name, str(args.seed),
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"error: wrk failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_row(row: dict) -> None:
    print(
        f"{row['batching']:<13} {row['clients']:>7} {row['sentences_per_s']:>8.1f} {row['p50_ms']:>8.0f} "
        f"{row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f} {row['errors']:>6} {row['mean_batch']:>6.1f} "
        f"{row['model_busy']:>5.0%}",
        flush=True,
    )


def plot(result: dict, path: Path) -> None:
    """Sentences/s and p95 latency against clients, dynamic batching against one sentence per batch, and
    the server's resident memory through the soak."""
    import matplotlib.pyplot as plt
    from plots import save

    figure, (rate, latency, memory) = plt.subplots(1, 3, figsize=(13, 3.4))
    for mode, style in (("dynamic", "o-"), ("one sentence", "s--")):
        rows = [r for r in result["medians"] if r["batching"] == mode]
        clients = [r["clients"] for r in rows]
        rate.plot(clients, [r["sentences_per_s"] for r in rows], style, label=mode)
        latency.plot(clients, [r["p95_ms"] for r in rows], style, label=mode)
    for axis, label in ((rate, "sentences / s"), (latency, "p95 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    rate.legend(fontsize=8)
    series = result.get("soak", {}).get("rss_mb", [])
    memory.plot([t / 60 for t, _ in series], [mb for _, mb in series], "-")
    memory.set_xlabel("soak minutes")
    memory.set_ylabel("server resident memory (MB)")
    memory.grid(alpha=0.3)
    rounds = max((r["rounds"] for r in result["medians"]), default=1)
    figure.suptitle(
        f"seq2seq-serve, beam {result['beam_size']}, {result['threads']} threads"
        + (f": medians of {rounds} rounds" if rounds > 1 else ""),
        fontsize=10,
    )
    figure.tight_layout()
    save(figure, path)


if __name__ == "__main__":
    main()
