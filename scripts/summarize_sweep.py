"""Rank the runs of a Hydra multirun folder by a metric and plot the metric against the swept parameters.

python scripts/summarize_sweep.py multirun/optuna/bundled_bleu
python scripts/summarize_sweep.py multirun/2026-11-25/10-00-00 --metric test/bleu --plot docs/sweep.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seq2seq.sweeps.summary import format_table, load_jobs, plot, ranked, swept_keys, write_json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder (hydra.sweep.dir)")
    parser.add_argument("--metric", default="val/bleu", help="results.json key to rank by (default val/bleu)")
    parser.add_argument("--minimize", action="store_true", help="lower is better (e.g. val/loss)")
    parser.add_argument("--plot", type=Path, help="PNG to write (default SWEEP_DIR/summary.png)")
    parser.add_argument("--json", type=Path, help="also write the ranked table as JSON here")
    args = parser.parse_args(argv)

    jobs = load_jobs(args.sweep_dir)
    if not jobs:
        sys.exit(
            f"error: {args.sweep_dir} holds no Hydra job folders (*/.hydra/overrides.yaml); "
            "give the folder a multirun wrote, e.g. multirun/2026-11-25/10-00-00"
        )
    best_first = ranked(jobs, args.metric, maximize=not args.minimize)
    if not best_first:
        sys.exit(
            f"error: none of the {len(jobs)} jobs in {args.sweep_dir} has a results.json with a number "
            f"for {args.metric!r}; check the key (e.g. val/bleu, test/bleu, val/loss) or the jobs' logs"
        )
    keys = swept_keys(jobs)
    print(format_table(best_first, keys, args.metric))
    unfinished = [job.folder.name for job in jobs if job not in best_first]
    if unfinished:
        print(f"\n{len(unfinished)} job(s) without a result (failed or interrupted): {', '.join(unfinished)}")
    out = args.plot or args.sweep_dir / "summary.png"
    plot(best_first, keys, args.metric, out)
    print(f"\nplot: {out}")
    if args.json:
        write_json(best_first, keys, args.metric, args.json)


if __name__ == "__main__":
    main()
