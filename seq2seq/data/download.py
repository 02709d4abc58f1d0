"""Fetching public corpora into the layout `data=parallel` reads: DIR/{train,valid,test}.{src,tgt}.gz.

Every file is checked before it is used: Multi30k against the MD5 sums that torchtext pinned for its
raw files, IWSLT14 against a SHA-256 that the user pins (`sha256=`) or, failing that, the one recorded
in `DIR/SOURCE.sha256` at the first download (no public checksum exists for fairseq's archive).
Downloads go to a staging folder and are moved into place only when complete and verified.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path

from seq2seq.errors import DownloadError

log = logging.getLogger(__name__)

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
# (split, lang) -> (file, MD5) for the task 1 raw files, as pinned in torchtext's Multi30k dataset.
MULTI30K_FILES = {
    ("train", "de"): ("train.de.gz", "81ff90b99829c0cd4b1b587d394afd39"),
    ("train", "en"): ("train.en.gz", "0065d13af80720a55ca8153d126e6627"),
    ("valid", "de"): ("val.de.gz", "6e0e229eb049e3fc99a1ef02fb2d5f91"),
    ("valid", "en"): ("val.en.gz", "2b69aa9253948ac9f67e94917272dd40"),
    ("test", "de"): ("test_2016_flickr.de.gz", "efd67d314d98489b716b145475101932"),
    ("test", "en"): ("test_2016_flickr.en.gz", "ff2c0fcb4893a13bd73414306bc250ae"),
}

IWSLT14_URL = "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz"
# fairseq's prepare-iwslt14.sh split: test is these sets concatenated, valid every 23rd training line.
IWSLT14_TEST_SETS = [
    "IWSLT14.TED.dev2010",
    "IWSLT14.TEDX.dev2012",
    "IWSLT14.TED.tst2010",
    "IWSLT14.TED.tst2011",
    "IWSLT14.TED.tst2012",
]
IWSLT14_VALID_EVERY = 23
SEGMENT = re.compile(r"<seg[^>]*>(.*)</seg>")


def fetch(url: str) -> bytes:
    """The bytes at `url` (http, https or file)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as error:
        raise DownloadError(
            f"Could not download {url}: {error}. Check the network or pass a mirror URL."
        ) from None


def check_digest(data: bytes, expected: str, algorithm: str, name: str) -> None:
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        raise DownloadError(
            f"Checksum mismatch for {name}: {algorithm} {actual}, expected {expected}. The download is corrupted or "
            f"the source changed; nothing was written. Retry, or if you trust the new file, pin its checksum explicitly."
        )


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A folder beside `out` whose files are moved into `out` only if the block succeeds.

    Not `seq2seq.files.atomic_folder`: `out` may hold other files (other corpora), so the finished
    files move in one by one, each rename atomic, rather than replacing the folder.
    """
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    try:
        yield folder
        for path in folder.iterdir():
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_lines_gz(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def download_multi30k(
    out: str | Path, base_url: str = MULTI30K_URL, files: dict = MULTI30K_FILES
) -> list[Path]:
    """Multi30k task 1 (de-en, Flickr test 2016) as out/{train,valid,test}.{de,en}.gz.

    Args:
        out: target folder (data.path).
        base_url: folder URL holding the raw files (a mirror, or a local file:// folder).
        files: (split, lang) -> (file name, MD5) to fetch and verify.
    """
    out = Path(out)
    with staging(out) as stage:
        for (split, lang), (name, md5) in files.items():
            data = fetch(base_url.rstrip("/") + "/" + name)
            check_digest(data, md5, "md5", name)
            (stage / f"{split}.{lang}.gz").write_bytes(data)
    return sorted(out.glob("*.gz"))


def _members(archive: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    return {Path(member.name).name: member for member in archive.getmembers() if member.isfile()}


def _read_member(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> list[str]:
    if name not in members:
        raise DownloadError(
            f"The IWSLT14 archive has no {name}: it is not fairseq's de-en.tgz. Check the URL."
        )
    return archive.extractfile(members[name]).read().decode("utf-8").splitlines()


def iwslt14_splits(archive_bytes: bytes) -> dict[tuple[str, str], list[str]]:
    """(split, lang) -> lines, split as fairseq's prepare-iwslt14.sh does but without tokenising or lowercasing."""
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as archive:
        members = _members(archive)
        train = {
            lang: [
                line.strip()
                for line in _read_member(archive, members, f"train.tags.de-en.{lang}")
                if not line.lstrip().startswith("<")
            ]
            for lang in ("de", "en")
        }
        test = {lang: [] for lang in ("de", "en")}
        for name in IWSLT14_TEST_SETS:
            for lang in ("de", "en"):
                lines = _read_member(archive, members, f"{name}.de-en.{lang}.xml")
                test[lang] += [unescape(m.group(1)).strip() for m in map(SEGMENT.search, lines) if m]
    if len(train["de"]) != len(train["en"]) or len(test["de"]) != len(test["en"]):
        raise DownloadError(
            "The IWSLT14 archive's German and English sides do not align; the archive is damaged."
        )
    splits = {}
    for lang in ("de", "en"):
        splits[("train", lang)] = [line for i, line in enumerate(train[lang], 1) if i % IWSLT14_VALID_EVERY]
        splits[("valid", lang)] = [
            line for i, line in enumerate(train[lang], 1) if not i % IWSLT14_VALID_EVERY
        ]
        splits[("test", lang)] = test[lang]
    return splits


def download_iwslt14(out: str | Path, url: str = IWSLT14_URL, sha256: str | None = None) -> list[Path]:
    """IWSLT14 de-en (TED talks) as out/{train,valid,test}.{de,en}.gz.

    Args:
        out: target folder (data.path).
        url: the archive (fairseq's de-en.tgz, a mirror, or a local file:// path).
        sha256: expected SHA-256 of the archive; without it the one recorded at the first download is used.
    """
    out = Path(out)
    record = out / "SOURCE.sha256"
    data = fetch(url)
    expected = sha256 or (record.read_text().split()[0] if record.is_file() else None)
    if expected:
        check_digest(data, expected, "sha256", url)
    else:
        log.warning(
            "IWSLT14: no published checksum; recording sha256 %s in %s",
            hashlib.sha256(data).hexdigest(),
            record,
        )
    splits = iwslt14_splits(data)
    with staging(out) as stage:
        for (split, lang), lines in splits.items():
            write_lines_gz(stage / f"{split}.{lang}.gz", lines)
        (stage / "SOURCE.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {url}\n")
    return sorted(out.glob("*.gz"))
