"""musicnn (Pons & Serra 2019, ISC licence) in torch, its weights read from the `musicnn` wheel's checkpoints.

musicnn was trained on the Million Song Dataset's top-50 tags (``MSD_musicnn``) or MagnaTagATune
(``MTT_musicnn``): 3 s patches of 96-band log-mel at 16 kHz, far more music than GTZAN's 190 artists.
Its penultimate layer is a genre-aware embedding; the genre models of rtgenre put a head on it. The
port follows the original TensorFlow graph: batch-norm epsilon 1e-3, TF "same" padding (the odd pad
at the end), ReLU before batch norm, max and mean pooled values interleaved in the back end.
"""

from __future__ import annotations

import functools
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtgenre.frontend import MelParams

from .tfbundle import read_checkpoint

# the musicnn front end: 16 kHz, 512-point FFT, hop 256, 96 mel bands, log10(1 + 10000·power)
PARAMS = MelParams(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, fmin=0.0, fmax=8000.0, log="log1p")
PATCH_FRAMES = 187  # 3 s, as musicnn was trained
EPS = 1e-3  # TF batch-norm default
TIME_CHUNK = 16  # output frames per row block of a time-only filter (``time_filter``): the fastest here
MSD_LABELS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    midend: int = 64  # filters per mid-end layer (MSD_musicnn, MTT_musicnn)
    backend: int = 200  # units of the penultimate dense layer
    classes: int = 50


def bn(n: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, eps=EPS)


class Timbral(nn.Module):
    """A wide conv over (time frames × a share of the mel bands), ReLU, batch norm, max over frequency.

    Computed in a cheaper order with the same result (to float rounding): the max over frequency first, then
    ReLU and batch norm on a band's worth of values. ReLU commutes with max, and so does a batch norm's
    positive scale; a filter whose scale is negative is computed negated, so that its max is the original's
    min. A time-only filter (one band wide) runs as banded matrix products (``time_filter``), a wider one with
    frequency in the DFT's basis (``spectral_filter``)."""

    def __init__(self, filters: int, bands: int, pad: tuple[int, int], time: int):
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(1, filters, (time, bands))
        self.bn = nn.BatchNorm2d(filters, eps=EPS)

    @property
    def channels(self) -> int:
        return self.conv.out_channels

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """Without padding: (B, 1, T, F) -> (B, C, T - time + 1). Batch norm with musicnn's statistics always."""
        sign = torch.where(self.bn.weight < 0, -1.0, 1.0)
        weight, bias = self.conv.weight * sign[:, None, None, None], self.conv.bias * sign
        if self.conv.kernel_size[1] == 1:
            peak = time_filter(x, weight[:, 0, :, 0], bias)
        else:
            peak = spectral_filter(x, weight[:, 0], bias)
        bn = self.bn
        return nn.functional.batch_norm(torch.relu(peak * sign[:, None]), bn.running_mean, bn.running_var,
                                        bn.weight, bn.bias, training=False, eps=bn.eps)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, F) -> (B, C, T)
        return self.maps(nn.functional.pad(x, (0, 0, *self.pad)))


def time_filter(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, F) through filters ``weight`` (C, k) along time in every band, max over the bands: (B, C, T - k + 1).

    A convolution with one input channel and a few long filters is several times slower in ONNX Runtime than
    matrix products: here every ``TIME_CHUNK`` output frames of a filter are one row block of a banded matrix,
    run as a strided convolution with ``C · TIME_CHUNK`` outputs over the frames zero-padded to whole chunks."""
    c, k = weight.shape
    lag = torch.arange(TIME_CHUNK + k - 1)[None] - torch.arange(TIME_CHUNK)[:, None]  # (chunk, chunk + k - 1)
    band = torch.where((lag >= 0) & (lag < k), weight[:, lag.clamp(0, k - 1)], torch.zeros(()))
    y = nn.functional.conv2d(nn.functional.pad(x, (0, 0, 0, TIME_CHUNK - 1)), band.reshape(c * TIME_CHUNK, 1, -1, 1),
                             bias.repeat_interleave(TIME_CHUNK), stride=(TIME_CHUNK, 1)).amax(dim=3)  # fmt: skip
    y = y.unflatten(1, (c, TIME_CHUNK)).transpose(2, 3).flatten(2)  # (B, C · chunk, chunks) -> (B, C, chunks · chunk)
    return y[:, :, : x.shape[2] - k + 1]


@functools.lru_cache
def real_dft(n: int, outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The real DFT of ``n`` points as a (2 (n // 2 + 1), n) matrix, rows cos and -sin per bin (the zero -sin rows
    of the first and last bin kept, so every bin is a pair); and its inverse's first ``outputs`` points, (outputs,
    2 (n // 2 + 1))."""
    k = np.arange(n // 2 + 1)[:, None]
    angle = 2.0 * np.pi * k * np.arange(n) / n
    forward = np.stack([np.cos(angle), -np.sin(angle)], axis=1).reshape(-1, n)
    scale = np.where((k == 0) | (k == n // 2), 1.0, 2.0) / n  # the bins between stand for their mirror images too
    inverse = np.stack([scale * np.cos(angle[:, :outputs]), -scale * np.sin(angle[:, :outputs])], axis=1)
    return (torch.from_numpy(forward.astype(np.float32)),
            torch.from_numpy(np.ascontiguousarray(inverse.reshape(-1, outputs).T, np.float32)))  # fmt: skip


def spectral_filter(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, F) through filters ``weight`` (C, k, b) over time and frequency, max over frequency: (B, C, T - k + 1).

    The convolution (a correlation, valid in both axes) with the frequency axis in the real DFT's basis of F
    points: there a filter's correlation along frequency is a product per bin, so each bin's pair of values goes
    through a 1-D convolution over time (``groups``: one per bin), and the inverse DFT gives the valid outputs.
    A half and a third of the direct convolution's multiply-adds for musicnn's 38- and 67-band filters over 96
    bands (the encoder's step a third faster in ONNX Runtime): the same values to float rounding (1e-6 of their
    largest)."""
    c, k, b = (int(d) for d in weight.shape)  # constants in an exported graph
    n = int(x.shape[3])
    bins = n // 2 + 1
    forward, inverse = real_dft(n, n - b + 1)
    spec = (x[:, 0] @ forward.T).transpose(1, 2)  # (B, 2 bins, T): each bin's real and imaginary part
    w = nn.functional.pad(weight, (0, n - b)) @ forward.T  # (C, k, 2 bins)
    re, im = w[..., 0::2], w[..., 1::2]
    # per bin, x · conj(w): (real, imaginary) out of (real, imaginary) in, for every filter
    g = torch.stack([torch.stack([re, im], dim=-1), torch.stack([-im, re], dim=-1)])  # (2 out, C, k, bins, 2 in)
    g = g.permute(3, 0, 1, 4, 2).reshape(bins * 2 * c, 2, k)  # (bins · 2 out · C, 2 in, k)
    y = nn.functional.conv1d(spec, g, groups=bins)  # (B, bins · 2 · C, T')
    batch, t = y.shape[0], y.shape[2]
    y = y.reshape(batch, 2 * bins, c * t)  # (B, 2 bins, C · T')
    return (inverse @ y).amax(dim=1).reshape(batch, c, t) + bias[None, :, None]


class MidEnd(nn.Module):
    """Three 1-D convs over time (k=7), ReLU then batch norm, the last two residual."""

    def __init__(self, cin: int, filters: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(cin if i == 0 else filters, filters, 7, padding=3) for i in range(3)])
        self.bns = nn.ModuleList([bn(filters) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h1 = self.bns[0](torch.relu(self.convs[0](x)))
        h2 = self.bns[1](torch.relu(self.convs[1](h1))) + h1
        h3 = self.bns[2](torch.relu(self.convs[2](h2))) + h2
        return [x, h1, h2, h3]


class Musicnn(nn.Module):
    """log-mel (B, T, 96) -> (tag logits, penultimate embedding)."""

    def __init__(self, shape: Shape = Shape(), n_mels: int = 96):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=EPS)
        timbral = int(1.6 * 128)
        temporal = int(1.6 * 32)
        self.frontend = nn.ModuleList(
            [Timbral(timbral, int(f * n_mels), (3, 3), 7) for f in (0.4, 0.7)]
            + [Timbral(temporal, 1, ((k - 1) // 2, k // 2), k) for k in (128, 64, 32)]
        )
        front = 2 * timbral + 3 * temporal
        self.midend = MidEnd(front, shape.midend)
        pooled = 2 * (front + 3 * shape.midend)
        self.pool_bn = bn(pooled)
        self.dense = nn.Linear(pooled, shape.backend)
        self.dense_bn = bn(shape.backend)
        self.dropout = nn.Dropout(0.5)
        self.out = nn.Linear(shape.backend, shape.classes)
        self.embedding_size = shape.backend

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """The front end's maps (B, 561, T): timbral and temporal convolutions of the log-mel."""
        h = self.input_bn(x.unsqueeze(1))
        return torch.cat([block(h) for block in self.frontend], dim=1)

    def pool(self, front: torch.Tensor) -> torch.Tensor:
        """The back end's input: max and mean over time of every front- and mid-end feature, interleaved."""
        mid = torch.cat(self.midend(front), dim=1)  # (B, 753, T)
        return torch.stack([mid.amax(dim=2), mid.mean(dim=2)], dim=2).flatten(1)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.front(x))

    def backend(self, pooled: torch.Tensor) -> torch.Tensor:
        """The penultimate layer from the pooled features."""
        return self.dense_bn(torch.relu(self.dense(self.dropout(self.pool_bn(pooled)))))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (musicnn's own "penultimate" feature)."""
        return self.backend(self.pooled(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.embed(x)))


def _bn(module: nn.Module, v: dict[str, np.ndarray], name: str) -> None:
    for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                      ("running_var", "moving_variance")):  # fmt: skip
        getattr(module, attr).data.copy_(torch.from_numpy(v[f"{name}/{key}"]))


def from_checkpoint(variables: dict[str, np.ndarray]) -> Musicnn:
    """The torch model with a checkpoint's weights, matched by the TF layers' creation order."""
    shape = Shape(midend=variables["conv2d_5/bias"].shape[0], backend=variables["dense/bias"].shape[0],
                  classes=variables["dense_1/bias"].shape[0])  # fmt: skip
    model = Musicnn(shape)
    _bn(model.input_bn, variables, "batch_normalization")
    for i, block in enumerate(model.frontend):  # TF kernels are (time, freq, in, out)
        name = f"conv2d_{i}" if i else "conv2d"
        block.conv.weight.data.copy_(torch.from_numpy(variables[f"{name}/kernel"]).permute(3, 2, 0, 1))
        block.conv.bias.data.copy_(torch.from_numpy(variables[f"{name}/bias"]))
        _bn(block.bn, variables, f"batch_normalization_{i + 1}")
    for i, (conv, norm) in enumerate(zip(model.midend.convs, model.midend.bns, strict=True)):
        kernel = torch.from_numpy(variables[f"conv2d_{i + 5}/kernel"])  # (7, channels, 1, filters)
        conv.weight.data.copy_(kernel[:, :, 0, :].permute(2, 1, 0))
        conv.bias.data.copy_(torch.from_numpy(variables[f"conv2d_{i + 5}/bias"]))
        _bn(norm, variables, f"batch_normalization_{i + 6}")
    _bn(model.pool_bn, variables, "batch_normalization_9")
    _bn(model.dense_bn, variables, "batch_normalization_10")
    for layer, name in ((model.dense, "dense"), (model.out, "dense_1")):
        layer.weight.data.copy_(torch.from_numpy(variables[f"{name}/kernel"]).T)
        layer.bias.data.copy_(torch.from_numpy(variables[f"{name}/bias"]))
    return model.eval()


def read_wheel(wheel: Path, net: str = "MSD_musicnn") -> dict[str, np.ndarray]:
    """A network's checkpoint variables straight from the ``musicnn`` wheel (a zip), without installing it.

    The checkpoint's own ``checkpoint`` file names the author's home folder, so the files are found by prefix.
    """
    import tempfile

    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as d:
        names = [n for n in z.namelist() if n.startswith(f"musicnn/{net}/.")]
        if not any(n.endswith(".index") for n in names):
            raise FileNotFoundError(f"{wheel}: no musicnn/{net}/ checkpoint inside")
        for n in names:
            (Path(d) / Path(n).name).write_bytes(z.read(n))
        return read_checkpoint(f"{d}/")  # the files are named ".index", ".data-…": an empty prefix


def convert(wheel: Path, out: Path, net: str = "MSD_musicnn") -> Path:
    """Write the torch weights of ``net`` from the wheel to ``out`` (a ``.pt`` state dict)."""
    model = from_checkpoint(read_wheel(wheel, net))
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"net": net, "state": model.state_dict(), "shape": model.out.out_features}, buf)
    out.write_bytes(buf.getvalue())
    return out


def load(path: Path) -> Musicnn:
    saved = torch.load(path, weights_only=False)
    state = saved["state"]
    shape = Shape(midend=state["midend.convs.0.bias"].shape[0], backend=state["dense.bias"].shape[0],
                  classes=state["out.bias"].shape[0])  # fmt: skip
    model = Musicnn(shape)
    model.load_state_dict(state)
    return model.eval()
