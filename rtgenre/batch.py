"""A whole music library classified on a Dask cluster: one model per worker process, one Parquet row per file.

Dask (``dask.distributed``) does the distributing: a ``LocalCluster`` of worker processes on this machine,
or any running scheduler, with the same code. Files go out in chunks (fewer, larger tasks keep the
scheduler's overhead per file small); each worker loads the model once and keeps it. Rows are written as
they arrive, a part file at a time (written to a temporary name, then renamed), into ``OUT`` — a Parquet
dataset directory that pandas, pyarrow, DuckDB or Spark read as one table — so an interrupted run loses
at most the rows not yet flushed, and the next run skips every file already classified with the same size,
modification time, model, window and hop. A bad file never stops the run: its row carries the error, and
the next run tries it again.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .audio import AUDIO_SUFFIXES
from .errors import RtgenreError

TRIM_THRESHOLD = 64 << 20  # bytes freed before glibc returns memory to the system, in worker processes
_MODELS: dict[tuple, object] = {}  # per worker process: the loaded model, by its settings


@dataclass(frozen=True)
class BatchSettings:
    """What every worker needs to classify a chunk the same way (it travels with each task)."""

    model: str | None = None  # a shipped model's name or a bundle directory (None: the default)
    window_s: float | None = None
    hop_s: float | None = None
    chunk: int = 8  # files per task
    flush_rows: int = 512  # rows per part file (a part is also written every flush_s)
    flush_s: float = 30.0


def find_audio(inputs: Iterable[str]) -> list[Path]:
    """Audio files under directories (recursively, by suffix), files named directly, and the paths listed in
    ``.txt``/``.lst`` files (one per line); absolute, each once, in a stable order."""
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file():
                    found[f.resolve()] = None
        elif path.suffix.lower() in (".txt", ".lst") and path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    found[Path(line.strip()).resolve()] = None
        elif path.exists():
            found[path.resolve()] = None
        else:
            raise RtgenreError(f"{item}: no such file or directory")
    return list(found)


def stat_key(path: Path) -> tuple[int, float] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime


def run_key(meta, settings: BatchSettings) -> dict:
    """What a row was classified with: a file classified otherwise (another model, window or hop) is not done."""
    return {"model": meta.name, "model_sha256": meta.files["model.onnx"],
            "window_s": settings.window_s or meta.window_s, "hop_s": settings.hop_s or meta.hop_s}  # fmt: skip


KEY_COLUMNS = ("path", "size", "mtime", "error", "model", "model_sha256", "window_s", "hop_s")


def done_keys(out: Path, key: dict) -> dict[str, tuple[int, float]]:
    """(size, mtime) by path of every row already in the output dataset classified without error as ``key`` says."""
    import pyarrow.parquet as pq

    parts = sorted(out.glob("part-*.parquet")) if out.is_dir() else []
    if not parts:
        return {}
    missing = set(KEY_COLUMNS) - set(pq.read_schema(parts[0]).names)
    if missing:
        raise RtgenreError(f"{out}: written by an older rtgenre (no {', '.join(sorted(missing))} column); "
                           "choose a new --out")  # fmt: skip
    done: dict[str, tuple[int, float]] = {}
    for row in pq.read_table(parts, columns=list(KEY_COLUMNS)).to_pylist():  # a later part's row for a path wins
        ok = row["error"] is None and all(row[k] == v for k, v in key.items())
        done[row["path"]] = (row["size"], row["mtime"]) if ok else None
    return {p: k for p, k in done.items() if k is not None}


def worker_model(settings: BatchSettings):
    """This worker process's model, loaded on first use and kept."""
    from .api import load_model

    key = (settings.model,)
    if key not in _MODELS:
        _MODELS[key] = load_model(settings.model)
    return _MODELS[key]


def classify_chunk(paths: list[str], settings: BatchSettings) -> list[dict]:
    """Runs on a worker: one row per file."""
    model = worker_model(settings)
    return [_row(model, Path(p), settings) for p in paths]


def _row(model, path: Path, settings: BatchSettings) -> dict:
    row = empty_row(str(path), run_key(model.bundle.meta, settings), model.labels)
    try:
        r = model.classify(path, window_s=settings.window_s, hop_s=settings.hop_s)
    except RtgenreError as e:
        return {**row, "error": str(e)}
    except Exception as e:  # noqa: BLE001 - a decoder's surprise is this file's error, never the run's
        return {**row, "error": f"{type(e).__name__}: {e}"}
    probs = {f"p_{label}": (r.probs or {}).get(label) for label in model.labels}
    return {**row, "duration_s": r.duration_s, "genre": r.genre, "confidence": r.confidence, "state": r.state,
            "windows": len(r.window_times), "padded": r.padded, "truncated": r.truncated, **probs}  # fmt: skip


def empty_row(path: str, key: dict, labels: tuple[str, ...], error: str | None = None) -> dict:
    size, mtime = stat_key(Path(path)) or (-1, 0.0)
    return {"path": path, "size": size, "mtime": mtime, "duration_s": None, "genre": None, "confidence": None,
            "state": None, "windows": 0, "padded": False, "truncated": False, "error": error, **key,
            **{f"p_{label}": None for label in labels}}  # fmt: skip


def row_schema(labels: tuple[str, ...]):
    """One schema for every part, whatever its rows hold (a part of errors only has no float to infer)."""
    import pyarrow as pa

    f64, text = pa.float64(), pa.string()
    fields = [("path", text), ("size", pa.int64()), ("mtime", f64), ("duration_s", f64), ("genre", text),
              ("confidence", f64), ("state", text), ("windows", pa.int64()), ("padded", pa.bool_()),
              ("truncated", pa.bool_()), ("error", text), ("model", text), ("model_sha256", text),
              ("window_s", f64), ("hop_s", f64)]  # fmt: skip
    return pa.schema(fields + [(f"p_{label}", f64) for label in labels])


class PartWriter:
    """Buffers rows and writes them as numbered part files, atomically (temporary name, then rename)."""

    def __init__(self, out: Path, settings: BatchSettings, schema):
        self.out = out
        self.settings = settings
        self.schema = schema
        self.rows: list[dict] = []
        self._last = time.monotonic()
        out.mkdir(parents=True, exist_ok=True)

    def add(self, rows: list[dict]) -> None:
        self.rows += rows
        due = time.monotonic() - self._last >= self.settings.flush_s
        if len(self.rows) >= self.settings.flush_rows or (due and self.rows):
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._last = time.monotonic()
        if not self.rows:
            return
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"  # sorts in writing order
        tmp = self.out / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(self.rows, schema=self.schema), tmp)
        os.replace(tmp, self.out / name)
        self.rows = []


@dataclass
class Progress:
    """files/s, audio hours per second and ETA on one self-rewriting stderr line."""

    total: int
    done: int = 0
    audio_s: float = 0.0
    errors: int = 0
    started: float = 0.0
    _shown: float = 0.0

    def add(self, rows: list[dict]) -> None:
        self.done += len(rows)
        self.audio_s += sum(r["duration_s"] or 0.0 for r in rows)
        self.errors += sum(r["error"] is not None for r in rows)
        if time.monotonic() - self._shown >= 0.5 or self.done == self.total:
            self.show()

    def show(self) -> None:
        self._shown = time.monotonic()
        elapsed = max(self._shown - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta < 360000 else "--:--:--"
        hours = self.audio_s / 3600 / elapsed
        sys.stderr.write(f"\r{self.done}/{self.total} files  {rate:.1f} files/s  {hours:.3f} audio h/s  "
                         f"{self.errors} errors  ETA {eta_text}  ")  # fmt: skip
        sys.stderr.flush()


def chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def run_batch(inputs: Iterable[str], out: Path, settings: BatchSettings, scheduler: str | None = None,
              workers: int | None = None, progress: Callable[[int], Progress] = Progress) -> dict:  # fmt: skip
    """Classify every audio file of ``inputs`` not yet in ``out``; returns counts for the summary line."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster, as_completed
    except ModuleNotFoundError:
        raise RtgenreError("batch needs Dask and pyarrow: pip install 'rtgenre[batch]'") from None
    verbose = logging.getLogger().isEnabledFor(logging.INFO)
    if not verbose:  # Dask's start-up chatter only with --verbose
        logging.getLogger("distributed").setLevel(logging.ERROR)
    from .model import check_hop, check_window, load_bundle

    meta = load_bundle(settings.model).meta  # a bad model, window or hop fails here, once, not on every file
    key = run_key(meta, settings)
    check_hop(key["hop_s"], check_window(key["window_s"]))
    files = find_audio(inputs)
    done = done_keys(out, key)
    todo = [str(f) for f in files if done.get(str(f)) != stat_key(f)]
    counts = {"found": len(files), "skipped": len(files) - len(todo), "classified": 0, "errors": 0}
    if not todo:
        return counts
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: glibc then hands memory back on nearly
    # every free, and the front end's per-window arrays pay for it (35 % of a worker's throughput here);
    # the workers' stack sampler costs a few % too. A worker's own log (its stderr is the user's) says nothing
    # a row's error column does not, except with --verbose; it would print a traceback when a run is stopped
    # while a worker is sending (CommClosedError)
    spawn_env = {"MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
    if not verbose:
        spawn_env |= {"DASK_LOGGING__DISTRIBUTED": "critical", "DASK_LOGGING__ASYNCIO": "critical"}
    dask.config.set(
        {
            **{f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in spawn_env.items()},
            "distributed.worker.profile.enabled": False,
        }
    )
    cluster = None if scheduler else LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                                  processes=True, dashboard_address=None,
                                                  scheduler_kwargs={"dashboard": False})  # fmt: skip
    writer = PartWriter(out, settings, row_schema(meta.labels))
    bar = progress(len(todo))
    stopped = False
    try:
        with Client(scheduler or cluster) as client:
            client.run(lambda: worker_model(settings) and None)  # every worker loads it now, in parallel
            bar.started = time.monotonic()
            tasks = {client.submit(classify_chunk, c, settings, pure=False): c for c in chunks(todo, settings.chunk)}
            try:
                for future in as_completed(tasks):
                    try:
                        rows = future.result()
                    except Exception as e:  # noqa: BLE001 - a worker lost on these files (killed, crashed)
                        rows = [empty_row(p, key, meta.labels, f"worker failed: {type(e).__name__}: {e}")
                                for p in tasks[future]]  # fmt: skip
                    writer.add(rows)
                    bar.add(rows)
            except BaseException:  # Ctrl-C, SIGTERM, a lost scheduler: the CLI says which in one line, and
                stopped = True  # Dask's logged tracebacks about the tasks it then abandons are noise
                logging.disable(logging.CRITICAL)
                raise
    finally:
        writer.flush()  # what finished is kept, however the run ends
        sys.stderr.write("\n")
        if cluster is not None:
            cluster.close()
        if stopped:
            logging.disable(logging.NOTSET)
    return {**counts, "classified": bar.done, "errors": bar.errors}
