"""The corpus downloader, run for real against local fixture archives (file:// and an HTTP server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.corpus import read_parallel
from seq2seq.data.download import MULTI30K_FILES, download_iwslt14, download_multi30k
from seq2seq.errors import DownloadError


def multi30k_fixture(folder: Path) -> dict:
    """Small gz files under Multi30k's real names, and the checksum table that matches them."""
    files = {}
    for (split, lang), (name, _) in MULTI30K_FILES.items():
        data = gzip.compress(f"{split} {lang} eins\n{split} {lang} zwei\n".encode(), mtime=0)
        (folder / name).write_bytes(data)
        files[(split, lang)] = (name, hashlib.md5(data).hexdigest())
    return files


def test_multi30k_from_a_local_mirror_lands_in_the_parallel_layout(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    files = multi30k_fixture(mirror)
    out = tmp_path / "multi30k"
    download_multi30k(out, mirror.as_uri(), files)
    text = read_parallel(out, "valid", "de", "en")
    assert text.src == ["valid de eins", "valid de zwei"] and text.tgt == ["valid en eins", "valid en zwei"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.{l}.gz" for s, l in MULTI30K_FILES)


def test_multi30k_checksum_mismatch_writes_nothing(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    multi30k_fixture(mirror)  # fixture bytes against the real pinned MD5s
    out = tmp_path / "multi30k"
    with pytest.raises(DownloadError, match=r"Checksum mismatch for train\.de\.gz: md5 .* expected 81ff90b9"):
        download_multi30k(out, mirror.as_uri())
    assert list(out.iterdir()) == []


def iwslt14_archive(variant: str = "") -> bytes:
    """A tiny archive with the members and formats of fairseq's de-en.tgz."""
    members = {
        "train.tags.de-en.de": "<url>http://ted.com</url>\n"
        + "".join(f"satz {i}{variant}\n" for i in range(1, 47))
        + "<talkid>1</talkid>\n",
        "train.tags.de-en.en": "<url>http://ted.com</url>\n"
        + "".join(f"sentence {i}{variant}\n" for i in range(1, 47))
        + "<talkid>1</talkid>\n",
    }
    for name in [
        "IWSLT14.TED.dev2010",
        "IWSLT14.TEDX.dev2012",
        "IWSLT14.TED.tst2010",
        "IWSLT14.TED.tst2011",
        "IWSLT14.TED.tst2012",
    ]:
        for lang in ("de", "en"):
            members[f"{name}.de-en.{lang}.xml"] = (
                f'<doc>\n<seg id="1"> {name} {lang} &amp; mehr </seg>\n</doc>\n'
            )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"de-en/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    # gzip with a fixed mtime: "w:gz" stamps the current second, so two calls could differ in bytes.
    return gzip.compress(buffer.getvalue(), mtime=0)


@pytest.fixture
def http_folder(tmp_path: Path):
    """Serves a folder over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_iwslt14_over_http_splits_like_fairseq_and_records_its_checksum(http_folder, tmp_path: Path) -> None:
    folder, base = http_folder
    (folder / "de-en.tgz").write_bytes(iwslt14_archive())
    out = tmp_path / "iwslt14"
    download_iwslt14(out, f"{base}/de-en.tgz")
    train, valid, test = (read_parallel(out, split, "de", "en") for split in ("train", "valid", "test"))
    assert valid.src == ["satz 23", "satz 46"] and valid.tgt == ["sentence 23", "sentence 46"]
    assert len(train) == 44 and "satz 23" not in train.src and not any(s.startswith("<") for s in train.src)
    assert (
        test.src[0] == "IWSLT14.TED.dev2010 de & mehr"
        and test.src[1].startswith("IWSLT14.TEDX.dev2012")
        and len(test) == 5
    )
    recorded = (out / "SOURCE.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(iwslt14_archive()).hexdigest()

    (folder / "de-en.tgz").write_bytes(iwslt14_archive(variant="x"))  # the source changed since
    with pytest.raises(DownloadError, match="Checksum mismatch"):
        download_iwslt14(out, f"{base}/de-en.tgz")
    assert read_parallel(out, "valid", "de", "en").src == ["satz 23", "satz 46"]  # the old files stay intact


def test_download_script_pins_a_checksum_and_reports_errors_in_one_line(tmp_path: Path) -> None:
    archive = tmp_path / "de-en.tgz"
    archive.write_bytes(iwslt14_archive())
    script = [
        sys.executable,
        str(PROJECT_ROOT / "scripts" / "download_corpus.py"),
        "iwslt14",
        "--url",
        archive.as_uri(),
    ]
    good = subprocess.run(
        script
        + ["--out", str(tmp_path / "ok"), "--sha256", hashlib.sha256(archive.read_bytes()).hexdigest()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "python train.py data=iwslt14" in good.stdout
    bad = subprocess.run(
        script + ["--out", str(tmp_path / "bad"), "--sha256", "0" * 64],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        bad.returncode == 2
        and bad.stderr.startswith("error: Checksum mismatch")
        and "Traceback" not in bad.stderr
    )
    assert not list((tmp_path / "bad").glob("*.gz"))
