"""Download a public corpus into the layout `data=parallel` reads (see seq2seq/data/download.py).

python scripts/download_corpus.py multi30k --out data/multi30k
python scripts/download_corpus.py iwslt14 --out data/iwslt14 [--sha256 HEX]
python train.py data=multi30k
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seq2seq.data.download import IWSLT14_URL, MULTI30K_URL, download_iwslt14, download_multi30k
from seq2seq.errors import DownloadError, exit_with


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", choices=["multi30k", "iwslt14"])
    parser.add_argument("--out", type=Path, help="target folder (default data/<corpus>)")
    parser.add_argument(
        "--url",
        help=f"source: Multi30k folder URL (default {MULTI30K_URL}) or IWSLT14 archive URL (default {IWSLT14_URL})",
    )
    parser.add_argument("--sha256", help="IWSLT14 only: expected SHA-256 of the archive")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or Path("data") / args.corpus
    try:
        if args.corpus == "multi30k":
            files = download_multi30k(out, args.url or MULTI30K_URL)
        else:
            files = download_iwslt14(out, args.url or IWSLT14_URL, args.sha256)
    except DownloadError as error:
        exit_with(error)
    print(f"wrote {len(files)} files to {out}; train with: python train.py data={args.corpus}")


if __name__ == "__main__":
    main()
