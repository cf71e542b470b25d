"""Model families by name. Every model maps log-mel windows (batch, frames, n_mels) to logits."""

from __future__ import annotations

import math

import torch
from torch import nn

from rtgenre.frontend import MelParams

LEVEL_FLOOR_DB = 50.0  # level-normalised bins are clamped this far under the window's power: the front end's
# absolute floor (-100 dB) stays out of reach down to -40 dB input for windows whose power is over -10 dB (94 % of
# GTZAN's train + valid windows)


def level_normalise(x: torch.Tensor) -> torch.Tensor:
    """dB relative to the window's mean power, clamped at ``-LEVEL_FLOOR_DB``.

    A gain is a constant dB shift, which this removes. The reference is the mean *power* (loud bins
    decide it), not the mean dB (quiet, floor-bound bins swing that one by tens of dB between windows).
    """
    top = x.amax(dim=(1, 2), keepdim=True)  # the mean is taken under the loudest bin: no overflow, any length
    scale = math.log(10.0) / 10.0
    ref = top + torch.log(torch.exp((x - top) * scale).mean(dim=(1, 2), keepdim=True)) / scale
    return torch.clamp(x - ref, min=-LEVEL_FLOOR_DB)


class Standardize(nn.Module):
    """Fixed dB -> unit scale from training-set statistics. With ``level_norm`` each window is first
    referred to its own mean power (``level_normalise``), so the verdict stops following the input level
    (a quiet microphone), at the price of the absolute level as a cue."""

    def __init__(self, mean: float = -20.0, std: float = 20.0, level_norm: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        self.level_norm = level_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.level_norm:
            x = level_normalise(x)
        return (x - self.mean) / self.std


def conv_block(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(pool)
    )


class CNN(nn.Module):
    """A small 2-D CNN: about 20 MFLOPs for a 3 s window, so one core runs hundreds of windows a
    second. Global average+max pooling over time lets it take any window length of 1–3 s."""

    def __init__(self, n_mels: int, n_classes: int, width: int = 16, dropout: float = 0.3):
        super().__init__()
        w = width
        self.norm = Standardize()
        self.features = nn.Sequential(
            conv_block(1, w, (4, 4)),
            conv_block(w, 2 * w, (2, 2)),
            conv_block(2 * w, 4 * w, (2, 2)),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.norm(x).transpose(1, 2).unsqueeze(1))  # (B, C, mels, time)
        h = h.flatten(2)
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class CRNN2D(nn.Module):
    """2-D conv blocks that pool frequency away, then a GRU over the remaining time steps."""

    def __init__(self, n_mels: int, n_classes: int, width: int = 16, hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        w = width
        self.norm = Standardize()
        self.features = nn.Sequential(
            conv_block(1, w, (4, 2)), conv_block(w, 2 * w, (4, 2)), conv_block(2 * w, 2 * w, (3, 2))
        )
        self.rnn = nn.GRU(2 * w * (n_mels // 48), hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.norm(x).transpose(1, 2).unsqueeze(1))  # (B, C, mels', T')
        h, _ = self.rnn(h.flatten(1, 2).transpose(1, 2))  # (B, T', hidden)
        return self.head(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1))


class CRNN1D(nn.Module):
    """1-D convolutions over time with the mel bands as channels, then a GRU."""

    def __init__(self, n_mels: int, n_classes: int, width: int = 64, hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        self.norm = Standardize()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(cin, cout, 5, padding=2, bias=False), nn.BatchNorm1d(cout),
                                 nn.ReLU(inplace=True), nn.MaxPool1d(2))  # fmt: skip

        self.features = nn.Sequential(block(n_mels, width), block(width, width), block(width, width))
        self.rnn = nn.GRU(width, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.norm(x).transpose(1, 2))  # (B, C, T')
        h, _ = self.rnn(h.transpose(1, 2))
        return self.head(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1))


class RNN(nn.Module):
    """A plain two-layer GRU over the mel frames."""

    def __init__(self, n_mels: int, n_classes: int, hidden: int = 96, dropout: float = 0.3):
        super().__init__()
        self.norm = Standardize()
        self.rnn = nn.GRU(n_mels, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.norm(x))
        return self.head(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1))


def dct_matrix(n_mels: int, n_mfcc: int) -> torch.Tensor:
    """Orthonormal DCT-II: MFCCs are the DCT of the log-mel frames (librosa's definition), so an
    MFCC model needs no front end of its own and runs on the shared log-mel."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    basis = torch.cos(torch.pi / n_mels * (n + 0.5) * k) * (2.0 / n_mels) ** 0.5
    basis[0] /= 2**0.5
    return basis.T.float()  # (n_mels, n_mfcc)


class CNNLSTM(nn.Module):
    """1-D convolutions then an LSTM over MFCC frames (a seed project's architecture)."""

    def __init__(self, n_mels: int, n_classes: int, n_mfcc: int = 20, width: int = 64, hidden: int = 64,
                 dropout: float = 0.3):  # fmt: skip
        super().__init__()
        self.norm = Standardize()
        self.register_buffer("dct", dct_matrix(n_mels, n_mfcc))
        self.mfcc_norm = nn.BatchNorm1d(n_mfcc)  # the coefficients' scales differ: learned, fixed at export
        self.features = nn.Sequential(
            nn.Conv1d(n_mfcc, width, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool1d(2),
            nn.Conv1d(width, width, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool1d(2),
        )  # fmt: skip
        self.rnn = nn.LSTM(width, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mfcc = (self.norm(x) @ self.dct).transpose(1, 2)  # (B, n_mfcc, T)
        h, _ = self.rnn(self.features(self.mfcc_norm(mfcc)).transpose(1, 2))
        return self.head(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1))


FRAME_RATE = MelParams().sample_rate / MelParams().hop_length  # log-mel frames per second
TEMPO_BPM = (60.0, 200.0)


class HandFeatures(nn.Module):
    """The seed baseline's hand-made features, computed from the log-mel inside the graph so the
    model runs on the shared front end: per frame MFCC (20), RMS, spectral centroid, bandwidth,
    85 % roll-off and flatness (in mel-band units), contrast in 6 sub-bands and onset strength,
    their means and standard deviations over the window; and the window's tempo (the 60–200 BPM
    autocorrelation peak of the onset envelope, under a prior around 120 BPM) with its strength:
    66 numbers. Zero-crossing rate
    needs the waveform and chroma a finer spectrum than 96 mel bands (about 35 Hz wide below
    1 kHz, wider than a semitone there): both are left out."""

    def __init__(self, n_mels: int, n_mfcc: int = 20, sub_bands: int = 6):
        super().__init__()
        self.register_buffer("dct", dct_matrix(n_mels, n_mfcc))
        self.register_buffer("band", torch.arange(n_mels, dtype=torch.float32))
        self.sub_bands = sub_bands
        self.lags = list(range(int(FRAME_RATE * 60 / TEMPO_BPM[1]), int(FRAME_RATE * 60 / TEMPO_BPM[0]) + 2))
        self.register_buffer("bpm", 60.0 * FRAME_RATE / torch.tensor(self.lags, dtype=torch.float32))
        # a log-normal prior around 120 BPM, one octave wide (librosa's): picks the beat over its half
        self.register_buffer("prior", torch.exp(-0.5 * torch.log2(self.bpm / 120.0) ** 2))
        self.size = 2 * (n_mfcc + 6 + sub_bands) + 2

    def tempo(self, onset: torch.Tensor) -> torch.Tensor:
        """(B, T) onset envelope -> (B, 2): BPM at the autocorrelation peak, and the peak over the
        envelope's energy. Zero padding keeps every lag defined for windows shorter than the lag."""
        o = onset - onset.mean(dim=1, keepdim=True)
        padded = nn.functional.pad(o, (0, self.lags[-1]))
        n = o.shape[1]
        ac = torch.stack([(o * padded[:, lag : lag + n]).mean(dim=1) for lag in self.lags], dim=1)
        best = (ac * self.prior).argmax(dim=1)
        peak = ac.gather(1, best[:, None])[:, 0]
        return torch.stack([self.bpm[best], peak / (o * o).mean(dim=1).clamp(min=1e-6)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, M) in dB
        p = torch.pow(10.0, x / 10.0)
        total = p.sum(dim=2, keepdim=True)
        centroid = (p * self.band).sum(dim=2, keepdim=True) / total
        bandwidth = torch.sqrt((p * (self.band - centroid) ** 2).sum(dim=2, keepdim=True) / total)
        rolloff = (torch.cumsum(p, dim=2) < 0.85 * total).float().sum(dim=2, keepdim=True)
        mean_p = total / x.shape[2]
        rms = 10.0 * torch.log10(mean_p)
        flatness = x.mean(dim=2, keepdim=True) - rms
        subs = x.reshape(x.shape[0], x.shape[1], self.sub_bands, -1)
        contrast = subs.amax(dim=3) - subs.mean(dim=3)
        onset = torch.relu(x[:, 1:] - x[:, :-1]).mean(dim=2, keepdim=True)
        onset = torch.cat([onset[:, :1], onset], dim=1)
        frames = torch.cat([x @ self.dct, rms, centroid, bandwidth, rolloff, flatness, onset, contrast], dim=2)
        return torch.cat([frames.mean(dim=1), frames.std(dim=1), self.tempo(onset[:, :, 0])], dim=1)


class ANN(nn.Module):
    """A multi-layer perceptron on hand-made features (the baseline a seed project reports)."""

    def __init__(self, n_mels: int, n_classes: int, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.features = HandFeatures(n_mels)  # needs real dB: no Standardize in front
        self.mlp = nn.Sequential(
            nn.BatchNorm1d(self.features.size), nn.Linear(self.features.size, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden // 2), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden // 2, n_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.features(x))


FAMILIES = {"cnn": CNN, "crnn2d": CRNN2D, "crnn1d": CRNN1D, "rnn": RNN, "cnnlstm": CNNLSTM, "ann": ANN}


def fit_standardize(model: nn.Module, mels: list) -> None:
    """Set a model's fixed dB scaling from its training log-mel (families without one are left alone)."""
    if isinstance(getattr(model, "norm", None), Standardize):
        shift = model.norm.level_norm
        frames = torch.cat([level_normalise(torch.as_tensor(m)[None])[0] if shift else torch.as_tensor(m)
                            for m in mels])  # fmt: skip
        model.norm.mean.fill_(float(frames.mean()))
        model.norm.std.fill_(float(frames.std(correction=0)))


def build(family: str, n_mels: int, n_classes: int, level_norm: bool = False) -> nn.Module:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    model = FAMILIES[family](n_mels, n_classes)
    if level_norm:
        if not isinstance(getattr(model, "norm", None), Standardize):
            raise ValueError(f"{family} reads absolute dB (hand-made features): no level normalisation")
        model.norm.level_norm = True
    return model
