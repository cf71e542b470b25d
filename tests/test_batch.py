"""`rtgenre batch`: a library classified on a real Dask LocalCluster of two worker processes into Parquet,
against `rtgenre classify`, with a bad file, an interruption and a resume."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import rtgenre

from rtgenre.batch import find_audio

pytestmark = pytest.mark.slow  # real daemons, devices, browsers or installs: `make test-fast` skips them


@pytest.fixture
def library(data, tmp_path) -> Path:
    """Real GTZAN tracks in nested folders, and a file that only claims to be audio."""
    root = tmp_path / "library"
    for genre in ("blues", "metal", "jazz"):
        (root / genre).mkdir(parents=True)
        for src in sorted((data / "gtzan" / genre).glob("*.ogg"))[:2]:
            shutil.copy(src, root / genre / src.name)
    (root / "broken.mp3").write_bytes(b"not audio at all")
    return root


def table(out: Path) -> dict[str, dict]:
    return {r["path"]: r for r in pq.read_table(out).to_pylist()}


def batch(*args: str, **kw) -> subprocess.CompletedProcess:
    return rtgenre("batch", "--workers", "2", *args, timeout=300, **kw)


def test_a_library_on_two_workers_matches_classify(library, tmp_path):
    out = tmp_path / "results.parquet"
    r = batch(str(library), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = table(out)
    files = find_audio([str(library)])
    assert sorted(rows) == sorted(map(str, files)) and len(files) == 7
    bad = rows[str((library / "broken.mp3").resolve())]
    assert bad["error"] and "broken.mp3" in bad["error"] and bad["genre"] is None
    good = [f for f in files if f.suffix == ".ogg"]
    expected = [json.loads(line) for line in rtgenre("classify", "--json", *map(str, good)).stdout.splitlines()]
    for f, want in zip(good, expected, strict=True):
        row = rows[str(f)]
        assert (
            row["error"] is None and row["size"] == f.stat().st_size and row["duration_s"] == pytest.approx(30, abs=1)
        )
        assert (row["genre"], row["windows"]) == (want["genre"], want["windows"])
        # ONNX Runtime may batch the windows differently here: the last of 6 rounded decimals can differ
        assert row["confidence"] == pytest.approx(want["confidence"], abs=2e-6)
        assert {g: row[f"p_{g}"] for g in want["probs"]} == pytest.approx(want["probs"], abs=2e-6)
    again = batch(str(library), "--out", str(out))  # nothing changed: only the error row is tried again
    assert again.returncode == 0 and "1 classified (1 with errors), 6 already in" in again.stderr, again.stderr


def test_an_interrupted_run_keeps_what_finished_and_resumes(data, tmp_path):
    listing = tmp_path / "tracks.txt"
    tracks = sorted((data / "gtzan").glob("*/*.ogg"))[:160]  # ~10 s of work: the interrupt lands mid-run
    listing.write_text("\n".join(map(str, tracks)) + "\n")
    out = tmp_path / "results.parquet"
    cmd = [sys.executable, "-m", "rtgenre", "batch", "--workers", "2", "--chunk", "1", str(listing), "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    seen = bytearray()
    reader = threading.Thread(
        target=lambda: [seen.extend(b) for b in iter(lambda: os.read(proc.stderr.fileno(), 4096), b"")]
    )
    reader.start()
    deadline = time.monotonic() + 120
    while max(map(int, re.findall(rb"(\d+)/160 files", seen)), default=0) < 5 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # SIGTERM, as systemd or kill stop it (Ctrl-C takes the same path; a shell that starts a suite in the
    # background hands its children SIGINT ignored). It used to be swallowed when it landed while a task's
    # result was awaited ("worker failed") and the run went on to the end
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    reader.join()
    said = seen.decode(errors="replace")
    assert "terminated" in said and "Traceback" not in said, said[-3000:]
    kept = table(out)
    assert 5 <= len(kept) < 160, "what finished is written, and the run was cut short"
    r = batch(str(listing), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"{160 - len(kept)} classified" in r.stderr and f"{len(kept)} already in" in r.stderr
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(str(t.resolve()) for t in tracks)  # each once
    assert all(r["error"] is None and r["genre"] for r in rows)


def test_a_rerun_redoes_error_rows_and_files_classified_otherwise(data, tmp_path):
    root = tmp_path / "library"
    root.mkdir()
    for src in sorted((data / "gtzan" / "blues").glob("*.ogg"))[:2]:
        shutil.copy(src, root / src.name)
    (root / "broken.mp3").write_bytes(b"not audio at all")
    out = tmp_path / "results.parquet"
    bad = rtgenre("batch", "--workers", "1", str(root), "--out", str(out), "--window", "1", "--hop", "2")
    assert bad.returncode == 1 and bad.stderr.strip() == "rtgenre: error: hop 2 s is longer than the window (1 s)"
    assert not out.exists()  # nothing written: the good rerun below has nothing to skip
    first = rtgenre("batch", "--workers", "1", str(root), "--out", str(out), timeout=300)
    assert first.returncode == 0 and "3 classified (1 with errors), 0 already in" in first.stderr, first.stderr
    again = rtgenre("batch", "--workers", "1", str(root), "--out", str(out), timeout=300)
    assert "1 classified (1 with errors), 2 already in" in again.stderr, again.stderr  # the error row is retried
    other = rtgenre("batch", "--workers", "1", str(root), "--out", str(out), "--hop", "1", timeout=300)
    assert "3 classified (1 with errors), 0 already in" in other.stderr, other.stderr  # another hop: all redone
    latest = {r["path"]: r for r in pq.read_table(out).to_pylist()}  # a later part's row for a path wins
    assert {r["hop_s"] for r in latest.values()} == {1.0}
    assert all(r["model"] == "musicnn-gtzan" and r["window_s"] == 3.0 for r in latest.values())
