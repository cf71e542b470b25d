"""Replay throughput and hop-to-publish latency of rtgenre against a naive baseline, on one core.

The baseline does what the seed projects do: decode with librosa, and at every hop recompute the
mel spectrogram of the whole window with librosa and run the model on it with torch. Both sides
run in this process, pinned to one CPU core, on the same GTZAN tracks; the figures that matter are
the ratios, measured side by side in the same run.

    python bench/throughput.py [--data ../shared/data] [--tracks 10]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's training package

from rtgenre.api import load_model  # noqa: E402
from rtgenre.audio import FileSource  # noqa: E402
from rtgenre.feed import Publisher, subscribe  # noqa: E402
from rtgenre.model import Classifier, load_bundle  # noqa: E402
from rtgenre.pipeline import StreamPipeline, StreamSettings, run_source  # noqa: E402
from training.models import build  # noqa: E402

torch.set_num_threads(1)
# the runtime's machinery against the seed projects' way, on the model they could run: a model of mel windows
# (the default's streaming encoder has no naive counterpart; bench/models.py gives its cost per window)
MODEL = "crnn2d-gtzan"


def baseline_model(bundle) -> torch.nn.Module:
    """The bundle's architecture in torch (untrained: the baseline's cost does not depend on its weights)."""
    family = bundle.meta.extra.get("family")
    if family is None:
        raise SystemExit(f"{bundle.path}: meta.json names no model family, so the baseline cannot rebuild it")
    return build(family, bundle.meta.frontend.n_mels, len(bundle.meta.labels)).eval()


def tracks(data: Path, n: int) -> list[Path]:
    files = sorted((data / "gtzan").glob("*/*.ogg"))
    return files[:: max(1, len(files) // n)][:n]


def rtgenre_classify(bundle, clf, files) -> float:
    """Seconds to classify every file the way `rtgenre classify` does."""
    t0 = time.perf_counter()
    for f in files:
        run_source(FileSource(str(f), 22050, 5.0), StreamPipeline(bundle, StreamSettings()), clf, realtime=False)
    return time.perf_counter() - t0


def classify_process(model: str, files: list[Path]) -> float:
    """Seconds of a whole `rtgenre classify` process over ``files`` on one core: start-up, loading, every track.
    As an installed copy runs: an untimed first run leaves the package's compiled bytecode (where
    ``PYTHONDONTWRITEBYTECODE`` forbids that, every run compiled rtgenre's modules again: 30 ms)."""
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "rtgenre", "classify", "--model", model]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([*cmd, str(files[0])], check=True, stdout=subprocess.DEVNULL, env=env)
    t0 = time.perf_counter()
    subprocess.run([*cmd, *map(str, files)], check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def streamed_classify(bundle, clf, files) -> float:
    """Seconds to classify every file as a live stream is: 0.02 s blocks, the encoder a hop's frames a call."""
    t0 = time.perf_counter()
    for f in files:
        run_source(FileSource(str(f), bundle.meta.frontend.sample_rate, 0.02), StreamPipeline(bundle, StreamSettings()),
                   clf, realtime=False)  # fmt: skip
    return time.perf_counter() - t0


def naive_windows(bundle, y: np.ndarray):
    """Every hop: the whole window's samples, as the seed projects slice them."""
    m = bundle.meta
    win, hop = int(m.window_s * m.frontend.sample_rate), int(m.hop_s * m.frontend.sample_rate)
    return [y[s : s + win] for s in range(0, len(y) - win + 1, hop)]


def naive_classify_window(bundle, model, w: np.ndarray) -> np.ndarray:
    p = bundle.meta.frontend
    mel = librosa.feature.melspectrogram(
        y=w, sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax
    )
    x = torch.from_numpy(librosa.power_to_db(mel, ref=1.0, top_db=None).T[None].astype(np.float32))
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


def naive_classify(bundle, model, files) -> float:
    t0 = time.perf_counter()
    for f in files:
        y, _ = librosa.load(f, sr=bundle.meta.frontend.sample_rate)
        probs = [naive_classify_window(bundle, model, w) for w in naive_windows(bundle, y)]
        np.mean(probs, axis=0).argmax()
    return time.perf_counter() - t0


def rtgenre_latency(bundle, clf, files, endpoint: str) -> tuple[np.ndarray, np.ndarray]:
    """Per window: last sample of the hop handed over -> message sent, and -> message received."""
    pub = Publisher(endpoint, hwm=100_000)
    received: dict[int, float] = {}

    def listen():
        for _, msg in subscribe(endpoint, "bench", timeout_s=3):
            received[msg["seq"]] = time.monotonic()

    t = threading.Thread(target=listen)
    t.start()
    pub.wait_for_subscriber(5)
    pipe = StreamPipeline(bundle, StreamSettings(id="bench"), pub, clf.provider)
    hop = int(bundle.meta.hop_s * 22050)
    sent = {}
    for f in files:
        y = FileSource(str(f), 22050, 30.0).whole()
        for s in range(0, len(y), hop):
            pipe.feed(y[s : s + hop])
            wins = pipe.windows()
            if wins:
                for m in pipe.emit(wins, clf.predict(np.stack([w.mel for w in wins]))):
                    sent[m["seq"]] = wins[0].arrived
    t.join()
    pub.close()
    to_socket = pipe.latencies.values()
    to_subscriber = np.array([received[k] - sent[k] for k in sent if k in received])
    return to_socket, to_subscriber


def naive_latency(bundle, model, files) -> np.ndarray:
    out = []
    for f in files:
        y, _ = librosa.load(f, sr=22050)
        for w in naive_windows(bundle, y):
            t0 = time.perf_counter()
            naive_classify_window(bundle, model, w)
            out.append(time.perf_counter() - t0)
    return np.array(out)


def pct(a: np.ndarray, q: float) -> str:
    return f"{np.percentile(a, q) * 1e3:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--tracks", type=int, default=10)
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5599")
    args = ap.parse_args()
    bundle = load_bundle(MODEL)
    clf = Classifier(bundle, "cpu", threads=1)
    model = baseline_model(bundle)
    files = tracks(args.data, args.tracks)
    audio_s = sum(FileSource(str(f), 22050).info.duration_s for f in files)
    rtgenre_classify(bundle, clf, files[:1])  # warm caches and the session
    naive_classify(bundle, model, files[:1])
    ours = rtgenre_classify(bundle, clf, files)
    naive = naive_classify(bundle, model, files)
    sock, sub = rtgenre_latency(bundle, clf, files, args.endpoint)
    nlat = naive_latency(bundle, model, files)
    print(f"{len(files)} GTZAN tracks, {audio_s:.0f} s of audio, one CPU core, {clf.provider}")
    print(f"window {bundle.meta.window_s:g} s, hop {bundle.meta.hop_s:g} s, model {bundle.meta.name}\n")
    print("| measure | rtgenre | naive baseline | ratio |")
    print("|---|---|---|---|")
    print(
        f"| classify throughput (× real time) | {audio_s / ours:.0f}× | {audio_s / naive:.0f}× | {naive / ours:.1f}× |"
    )
    print(
        f"| hop-to-publish latency p50 | {pct(sock, 50)} | {pct(nlat, 50)} | {np.median(nlat) / np.median(sock):.1f}× |"
    )
    print(
        f"| hop-to-publish latency p99 | {pct(sock, 99)} | {pct(nlat, 99)} | "
        f"{np.percentile(nlat, 99) / np.percentile(sock, 99):.1f}× |"
    )
    print(f"| hop-to-subscriber latency p99 (loopback) | {pct(sub, 99)} | – | – |")
    default = load_model(None)
    first = default.classify(files[0])  # warm
    t0 = time.perf_counter()
    for f in files:
        default.classify(f)
    whole = time.perf_counter() - t0
    streamed = streamed_classify(default.bundle, default.classifier, files)
    print(f"\n{default.name} (the default), {len(first.window_times)} windows a track\n")
    print("| measure | × real time |\n|---|---|")
    print(f"| whole-file path (`Model.classify`: the encoder over seconds of frames a call) | {audio_s / whole:.0f}× |")
    print(f"| the same files as live streams (0.02 s blocks, one hop a call) | {audio_s / streamed:.0f}× "
          f"(whole-file {streamed / whole:.2f}× faster) |")  # fmt: skip
    many = tracks(args.data, 20)
    many_s = sum(FileSource(str(f), 22050).info.duration_s for f in many)
    for name in ("musicnn-gtzan", MODEL):
        print(
            f"| `rtgenre classify` of {len(many)} tracks, whole process, {name} | "
            f"{many_s / classify_process(name, many):.0f}× |"
        )


if __name__ == "__main__":
    main()
