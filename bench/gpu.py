"""The GPU path, proven and measured in one short run (issue 15).

    python bench/gpu.py [--data ../shared/data] [--max-batch 1024]
    python bench/gpu.py --cpu-stand-in     # every part with the CPU provider in CUDA's place (what CI runs)

(a) ONNX Runtime's CUDA provider really runs every shipped audio model (read back from the session, not
assumed: ORT falls back to the CPU silently), and CUDA and CPU probabilities agree within 1e-4 on real
windows; (b) windows per second against batch size on CUDA (plain ``run`` and with IO binding, the
output left on the device until read) and on all CPU cores, in the same run; (c) real-time streams one
GPU sustains through the daemon's scheduling path (streaming mel on one CPU core, the encoder steps of
``--encoder-batch`` streams a call, then one stream a call, batched window inference) with the step's
p50/p99, and how many streams the CPU front end alone could feed; (d) one Markdown table per part. Without
a GPU it says so in one line and exits 0. When the GPU is
there but the CUDA 13/cuDNN 9 libraries are not, it installs them from PyPI
(``onnxruntime-gpu[cuda,cudnn]``) and starts again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from streaming import HOP_S, step_times, sustained  # noqa: E402

from rtgenre.audio import FileSource  # noqa: E402
from rtgenre.errors import ModelError  # noqa: E402
from rtgenre.feed import Publisher  # noqa: E402
from rtgenre.model import Classifier, load_bundle, shipped_models  # noqa: E402

BATCHES = (1, 4, 16, 64, 256, 1024)
PARITY_ATOL = 1e-4


def gpu_name() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else None


def cuda_unready() -> str | None:
    """Why ONNX Runtime's CUDA provider does not run the default model here, or None when it does."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):  # the CUDA/cuDNN libraries of the nvidia-* PyPI packages, if installed
        ort.preload_dlls()
    try:
        Classifier(load_bundle(), "cuda")  # raises unless CUDA is the active provider
    except ModelError as e:
        return str(e)
    return None


def rows_of(bundle, y: np.ndarray) -> np.ndarray:
    """The model's input rows of a whole signal: log-mel frames, or its streaming encoder's feature rows."""
    mel, encoder = bundle.frontend().mel(y), bundle.stream_encoder()
    return mel if encoder is None else encoder.whole(mel)[0]


def real_windows(bundle, data: Path, n: int) -> np.ndarray:
    """``n`` windows of real GTZAN audio (noise shaped like log-mel without the data)."""
    p, frames = bundle.meta.frontend, bundle.meta.frontend.frames(bundle.meta.window_s)
    files = sorted((data / "gtzan").glob("*/*.ogg"))[::40]
    if not files:
        return np.random.default_rng(0).normal(-40, 15, (n, frames, bundle.input_width)).astype(np.float32)
    mels = [rows_of(bundle, FileSource(str(f), p.sample_rate, 30.0).whole()) for f in files]
    starts = [(m, s) for m in mels for s in range(0, len(m) - frames, frames // 2)]
    return np.stack([m[s : s + frames] for m, s in starts[:n]]).astype(np.float32)


def parity(device: str, data: Path) -> list[tuple]:
    rows = []
    for name in shipped_models():
        bundle = load_bundle(name)
        x = real_windows(bundle, data, 64)
        gpu = Classifier(bundle, device)
        diff = float(np.abs(gpu.predict(x) - Classifier(bundle, "cpu").predict(x)).max())
        rows.append((name, gpu.provider, diff, "ok" if diff <= PARITY_ATOL else "MISMATCH"))
    return rows


def windows_per_s(session, x: np.ndarray, io_binding: bool, seconds: float = 1.0) -> float:
    name = session.get_inputs()[0].name
    run = lambda: session.run(None, {name: x})  # noqa: E731
    if io_binding:
        binding = session.io_binding()
        binding.bind_cpu_input(name, x)
        binding.bind_output(session.get_outputs()[0].name, "cuda")

        def run():
            session.run_with_iobinding(binding)
            binding.copy_outputs_to_cpu()

    run()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run()
        n += 1
    return n * len(x) / (time.perf_counter() - t0)


def batch_sweep(device: str, data: Path, max_batch: int) -> list[tuple]:
    import onnxruntime as ort

    bundle = load_bundle()
    x = real_windows(bundle, data, 64)
    gpu = Classifier(bundle, device)._session
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = len(os.sched_getaffinity(0))
    cpu = ort.InferenceSession(str(bundle.onnx_path), opts, providers=["CPUExecutionProvider"])
    rows = []
    for b in (b for b in BATCHES if b <= max_batch):
        xb = np.ascontiguousarray(np.resize(x, (b, *x.shape[1:])))
        on_gpu = gpu.get_providers()[0] == "CUDAExecutionProvider"
        rows.append((b, windows_per_s(gpu, xb, False), windows_per_s(gpu, xb, True) if on_gpu else None,
                     windows_per_s(cpu, xb, False)))  # fmt: skip
    return rows


def streams(device: str, data: Path, hi: int, encoder_batch: int) -> tuple:
    bundle = load_bundle()
    clf = Classifier(bundle, device)
    rate = bundle.meta.frontend.sample_rate
    files = sorted((data / "gtzan").glob("*/*.ogg"))[::50] or []
    audio = [FileSource(str(f), rate, 30.0).whole() for f in files] or [
        np.random.default_rng(0).normal(0, 0.1, 30 * rate).astype(np.float32)
    ]
    pub = Publisher("tcp://127.0.0.1:5599", hwm=100_000)
    try:
        n = sustained(lambda k: step_times(bundle, clf, pub, audio, k, 5, encoder_batch).mean(), 1, hi)
        t = step_times(bundle, clf, pub, audio, n, 20, encoder_batch) * 1e3
        stream = bundle.frontend().stream()
        hop = audio[0][: int(HOP_S * rate)]
        t0 = time.perf_counter()
        for _ in range(200):
            stream.push(hop)
        mel_ms = (time.perf_counter() - t0) / 200 * 1e3
    finally:
        pub.close()
    return n, float(np.percentile(t, 50)), float(np.percentile(t, 99)), mel_ms, clf.provider


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--max-batch", type=int, default=1024)
    ap.add_argument("--max-streams", type=int, default=4096)
    ap.add_argument("--encoder-batch", type=int, default=256, help="Streams per encoder call (the batched run).")
    ap.add_argument("--cpu-stand-in", action="store_true", help="Run every part with the CPU provider (no GPU).")
    args = ap.parse_args()
    device, gpu = ("cpu", "none (CPU stand-in)") if args.cpu_stand_in else ("cuda", gpu_name())
    if gpu is None:
        print("bench/gpu.py: no NVIDIA GPU here (nvidia-smi finds none): nothing to measure; skipped")
        return 0
    if device == "cuda" and (why := cuda_unready()):
        if os.environ.get("RTGENRE_GPU_INSTALLED"):
            print(f"bench/gpu.py: CUDA does not load even with the CUDA libraries installed: {why}", file=sys.stderr)
            return 1
        print("bench/gpu.py: installing the CUDA 13 / cuDNN 9 libraries from PyPI (onnxruntime-gpu[cuda,cudnn])")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "onnxruntime-gpu[cuda,cudnn]"], check=True)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "RTGENRE_GPU_INSTALLED": "1"})
    print(f"GPU: {gpu}; CPU: {len(os.sched_getaffinity(0))} cores\n")
    print("| model | provider | max abs diff CUDA vs CPU (64 real windows) | |\n|---|---|---|---|")
    rows = parity(device, args.data)
    for name, provider, diff, verdict in rows:
        print(f"| {name} | {provider} | {diff:.2e} | {verdict} |")
    print("\n| batch | GPU windows/s | GPU windows/s, IO binding | CPU windows/s, all cores |\n|---|---|---|---|")
    for b, plain, bound, cpu in batch_sweep(device, args.data, args.max_batch):
        print(f"| {b} | {plain:,.0f} | {'–' if bound is None else f'{bound:,.0f}'} | {cpu:,.0f} |")
    print("\n| encoder calls | real-time streams, mel on one core | step p50 | step p99 | CPU mel front end alone |")
    print("|---|---|---|---|---|")
    for batch in (args.encoder_batch, 1):  # the batched encoder, then one stream per call: the before/after
        n, p50, p99, mel_ms, provider = streams(device, args.data, args.max_streams, batch)
        print(f"| {batch} streams a call, {provider} | {n} | {p50:.0f} ms | {p99:.0f} ms of {HOP_S * 1e3:.0f} | "
              f"{mel_ms:.3f} ms per stream-hop: {HOP_S * 1e3 / mel_ms:.0f} streams per core |")  # fmt: skip
    return 0 if all(r[3] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
