"""Which time-frequency regions drive a prediction: occlusion maps through the shipped ONNX model.

Each patch of a window's log-mel is set to silence in turn; the drop in the predicted genre's
probability is that region's importance. It needs no gradients, so it explains exactly the graph
the runtime runs, whatever the family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtgenre.audio import FileSource
from rtgenre.model import Classifier, load_bundle


def occlusion(clf: Classifier, window: np.ndarray, patch: tuple[int, int] = (8, 8)) -> tuple[int, np.ndarray]:
    """(predicted class, importance map shaped like ``window``) for one (frames, mels) window."""
    base = clf.predict(window[None])[0]
    top = int(base.argmax())
    floor = window.min()
    cells = [(t, m) for t in range(0, window.shape[0], patch[0]) for m in range(0, window.shape[1], patch[1])]
    masked = np.repeat(window[None], len(cells), axis=0)
    for k, (t, m) in enumerate(cells):
        masked[k, t : t + patch[0], m : m + patch[1]] = floor
    drop = base[top] - clf.predict(masked)[:, top]
    heat = np.zeros_like(window)
    for (t, m), d in zip(cells, drop, strict=True):
        heat[t : t + patch[0], m : m + patch[1]] = d
    return top, heat


def plot_tracks(tracks: list[Path], out: Path, model: Path | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bundle = load_bundle(model)
    clf = Classifier(bundle, "cpu")
    fe = bundle.frontend()
    n = bundle.meta.frontend.frames(bundle.meta.window_s)
    fig, axes = plt.subplots(2, len(tracks), figsize=(3.2 * len(tracks), 5.5), squeeze=False)
    for j, path in enumerate(tracks):
        y = FileSource(str(path), bundle.meta.frontend.sample_rate, 30.0).whole()
        mel = fe.mel(y)
        window = mel[len(mel) // 2 : len(mel) // 2 + n]  # a window from the middle of the track
        top, heat = occlusion(clf, window)
        extent = (0, bundle.meta.window_s, 0, bundle.meta.frontend.n_mels)
        axes[0, j].imshow(window.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
        axes[0, j].set_title(f"{path.stem}\npredicted {bundle.meta.labels[top]}", fontsize=8)
        axes[1, j].imshow(heat.T, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                          vmin=-np.abs(heat).max(), vmax=np.abs(heat).max())  # fmt: skip
        axes[1, j].set_xlabel("seconds", fontsize=7)
    axes[0, 0].set_ylabel("log-mel band", fontsize=7)
    axes[1, 0].set_ylabel("importance (occlusion)", fontsize=7)
    fig.suptitle("what the audio model looks at: red regions, when silenced, lower the predicted genre most")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
