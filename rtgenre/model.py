"""Model bundles and ONNX Runtime inference.

A bundle is a directory with ``model.onnx``, ``filterbank.npy``, ``meta.json`` and a model card, and
``encoder.onnx`` when the model classifies windows of a streaming encoder's feature rows (``encoder.py``).
The runtime trusts nothing it has not checked: file checksums, labels, front-end parameters and
the graph's input and output shapes must all agree with ``meta.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encoder import EncoderSpec, StreamEncoder
from .errors import ModelError
from .frontend import MelFrontend, MelParams

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "rtgenre-bundle/1"
# the shipped bundles, by name: inside the package when installed from a wheel, else the checkout's models/
_PACKAGE = Path(__file__).resolve().parent
MODELS_DIR = _PACKAGE / "models" if (_PACKAGE / "models").is_dir() else _PACKAGE.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "musicnn-gtzan"
MIN_WINDOW_S, MAX_WINDOW_S = 1.0, 3.0
MIN_HOP_S = 0.05  # a shorter hop classifies the same audio over and over for nothing
MAX_BATCH = 32


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelMeta:
    """A bundle's `meta.json`: what the runtime checks (labels, front end, window, checksums) and what it shows."""

    name: str
    labels: tuple[str, ...]
    frontend: MelParams
    window_s: float  # the window length the model was trained on
    hop_s: float  # default hop between windows
    files: dict[str, str]  # file name -> sha256
    extra: dict = field(default_factory=dict)  # training data, validation figures: informative only
    encoder: EncoderSpec | None = None  # a streaming encoder between the mel frames and the model

    @classmethod
    def from_json(cls, d: dict) -> ModelMeta:
        try:
            if d.get("format") != BUNDLE_FORMAT:
                raise ValueError(f"format is {d.get('format')!r}, expected {BUNDLE_FORMAT!r}")
            labels = tuple(d["labels"])
            if len(labels) < 2 or len(set(labels)) != len(labels):
                raise ValueError("labels must be at least two distinct names")
            known = {"format", "name", "labels", "frontend", "window_seconds", "hop_seconds", "files", "encoder"}
            return cls(
                name=str(d["name"]),
                labels=labels,
                frontend=MelParams.from_dict(d["frontend"]),
                window_s=float(d["window_seconds"]),
                hop_s=float(d["hop_seconds"]),
                files=dict(d["files"]),
                extra={k: v for k, v in d.items() if k not in known},
                encoder=EncoderSpec.from_dict(d["encoder"]) if "encoder" in d else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"meta.json: invalid ({type(e).__name__}: {e})") from None

    def to_json(self) -> dict:
        return {
            "format": BUNDLE_FORMAT,
            "name": self.name,
            "labels": list(self.labels),
            "frontend": self.frontend.to_dict(),
            "window_seconds": self.window_s,
            "hop_seconds": self.hop_s,
            "files": self.files,
            **({"encoder": self.encoder.to_dict()} if self.encoder else {}),
            **self.extra,
        }


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory: its meta and filterbank, loaded once."""

    path: Path
    meta: ModelMeta
    filterbank: np.ndarray

    @property
    def onnx_path(self) -> Path:
        return self.path / "model.onnx"

    def frontend(self) -> MelFrontend:
        return MelFrontend(self.meta.frontend, self.filterbank)

    @property
    def input_width(self) -> int:
        """Columns of the model's window rows: mel bands, or the encoder's feature width."""
        return self.meta.encoder.width if self.meta.encoder else self.meta.frontend.n_mels

    def stream_encoder(self, provider: str = "") -> StreamEncoder | None:
        """A new stream's encoder state (None: the model takes mel frames), sharing one session per provider; it
        steps the frames of the bundle's hop at a time, so a scheduler can step every stream's in one call."""
        if self.meta.encoder is None:
            return None
        chunk = self.meta.frontend.frames(self.meta.hop_s)
        return StreamEncoder(self.meta.encoder, encoder_session(self, provider), self.meta.frontend.n_mels, chunk)


def read_meta(root: Path, what: str) -> dict:
    """A bundle's ``meta.json`` as a JSON object; anything else is a one-line ``ModelError``."""
    if not root.is_dir():
        raise ModelError(f"{what} {root}: no such directory")
    try:
        meta = json.loads((root / "meta.json").read_text())
    except FileNotFoundError:
        raise ModelError(f"{what} {root}: meta.json is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{what} {root}: meta.json is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{what} {root}: meta.json must be a JSON object, not {type(meta).__name__}")
    return meta


def check_files(root: Path, what: str, files, names: tuple[str, ...]) -> None:
    """Every file in ``names`` exists and matches the sha256 that ``meta.json``'s ``files`` gives for it."""
    if not isinstance(files, dict):
        raise ModelError(f"{what} {root}: meta.json has no 'files' object of sha256 sums")
    for name in names:
        expected = files.get(name)
        if not isinstance(expected, str):
            raise ModelError(f"{what} {root}: meta.json lists no sha256 for {name}")
        if not (root / name).is_file():
            raise ModelError(f"{what} {root}: {name} is missing")
        actual = sha256_of(root / name)
        if actual != expected:
            raise ModelError(f"{what} {root}: {name} sha256 mismatch (expected {expected[:12]}…, got {actual[:12]}…)")


def user_models_dir() -> Path:
    """Where a user's own bundles live (``rtgenre-train fit --install NAME``): ``$RTGENRE_MODELS``, else
    ``~/.local/share/rtgenre/models``."""
    return Path(os.environ.get("RTGENRE_MODELS") or Path.home() / ".local" / "share" / "rtgenre" / "models")


def _bundles_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {d.name: d for d in sorted(folder.iterdir()) if (d / "model.onnx").is_file() and (d / "meta.json").is_file()}


def named_models() -> dict[str, Path]:
    """Every bundle ``--model NAME`` finds: the shipped ones, then the user's (a shipped name wins)."""
    return {**_bundles_in(user_models_dir()), **_bundles_in(MODELS_DIR)}


def available_models() -> list[str]:
    """The names ``--model NAME`` and ``model: NAME`` take: shipped bundles and the user's own."""
    return sorted(named_models())


def shipped_models() -> list[str]:
    return sorted(_bundles_in(MODELS_DIR))


def is_shipped(path: Path) -> bool:
    return path.resolve().parent == MODELS_DIR.resolve()


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """A bundle directory from a model's name or a directory (None: the default model)."""
    if spec is None:
        return DEFAULT_MODEL
    path = Path(spec)
    if path.is_dir():
        return path
    named = named_models()
    if str(spec) in named:
        return named[str(spec)]
    shipped = ", ".join(shipped_models()) or "none"
    yours = ", ".join(sorted(_bundles_in(user_models_dir()))) or "none"
    raise ModelError(f"model {str(spec)!r}: no such directory nor named model (shipped: {shipped}; "
                     f"in {user_models_dir()}: {yours})")  # fmt: skip


def load_bundle(path: str | os.PathLike | None = None) -> Bundle:
    """Load and verify a bundle, given by name or directory; any inconsistency is a one-line ``ModelError``."""
    root = resolve_model(path)
    try:
        meta = ModelMeta.from_json(read_meta(root, "model bundle"))
    except ModelError as e:
        raise ModelError(str(e) if str(e).startswith("model bundle") else f"model bundle {root}: {e}") from None
    graphs = ("model.onnx", "encoder.onnx") if meta.encoder else ("model.onnx",)
    check_files(root, "model bundle", meta.files, (*graphs, "filterbank.npy"))
    try:
        fb = np.load(root / "filterbank.npy", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ModelError(f"model bundle {root}: filterbank.npy is not a numpy array file ({e})") from None
    p = meta.frontend
    if fb.ndim != 2 or fb.shape != (p.n_mels, p.n_bins):
        raise ModelError(f"model bundle {root}: filterbank shape {fb.shape} does not match the front-end parameters")
    return Bundle(root, meta, fb.astype(np.float32))


def check_window(seconds: float) -> float:
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise ModelError(f"window {seconds:g} s is outside {MIN_WINDOW_S:g}–{MAX_WINDOW_S:g} s")
    return seconds


def check_hop(seconds: float, window_s: float) -> float:
    """The one hop rule (config, CLI, control socket, pipeline): a hop past the window would skip audio."""
    if not seconds > 0:
        raise ModelError(f"hop {seconds:g} s must be positive")
    if seconds < MIN_HOP_S:
        raise ModelError(f"hop {seconds:g} s is under the {MIN_HOP_S:g} s minimum")
    if seconds > window_s:
        raise ModelError(f"hop {seconds:g} s is longer than the window ({window_s:g} s)")
    return seconds


def open_session(path: Path, opts, providers: list[str]):
    """An ONNX Runtime session; a graph it cannot load is a one-line ``ModelError``.

    A CUDA provider that cannot load logs a page of errors before the silent CPU fallback: ORT stays
    quiet meanwhile, and the callers report the provider it ended with."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # ORT raises its own exception types for unreadable graphs
        raise ModelError(
            f"model bundle {path.parent}: {path.name} cannot be loaded ({str(e).splitlines()[0]})"
        ) from None
    finally:
        ort.set_default_logger_severity(2)


_ENCODER_SESSIONS: dict[tuple[str, str], object] = {}  # (sha256 of encoder.onnx, device) -> session


def encoder_session(bundle: Bundle, provider: str = ""):
    """One session per encoder graph (by content: a bundle replaced in place and reloaded gets its new graph)
    and provider, shared by every stream (``run`` is thread-safe); a graph that does not take and give what
    ``meta.json``'s ``encoder`` says is a one-line ``ModelError``."""
    import onnxruntime as ort

    spec, n_mels, path = bundle.meta.encoder, bundle.meta.frontend.n_mels, bundle.path / "encoder.onnx"
    cuda = provider == "CUDAExecutionProvider"
    key = (bundle.meta.files["encoder.onnx"], "cuda" if cuda else "cpu")
    if key not in _ENCODER_SESSIONS:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = open_session(path, opts, (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"])
        where = f"model bundle {bundle.path}: encoder.onnx"
        inputs = {i.name: i.shape for i in session.get_inputs()}
        expected = {"x": ["batch", "frames", n_mels], "context": ["batch", 2 * spec.mid, spec.front_width]}
        if set(inputs) != set(expected) or any(
            len(inputs[k]) != 3 or inputs[k][2] != v[2] for k, v in expected.items()
        ):
            raise ModelError(f"{where}: inputs {inputs} are not x (batch, frames, {n_mels}) and context "
                             f"(batch, {2 * spec.mid}, {spec.front_width}) as meta.json's encoder says")  # fmt: skip
        if [o.shape[2] if len(o.shape) == 3 else None for o in session.get_outputs()] != [spec.front_width, spec.width]:
            raise ModelError(f"{where}: outputs are not front maps and rows of {spec.front_width} and {spec.width}")
        _ENCODER_SESSIONS[key] = session
    return _ENCODER_SESSIONS[key]


def release_encoder_sessions(keep: Bundle | None = None) -> None:
    """Forget the shared encoder sessions of every graph but ``keep``'s: after a reload to another model, the old
    graph's session is freed once the streams that hold it have ended."""
    kept = keep.meta.files.get("encoder.onnx") if keep is not None and keep.meta.encoder else None
    for key in [k for k in _ENCODER_SESSIONS if k[0] != kept]:
        del _ENCODER_SESSIONS[key]


class Classifier:
    """An ONNX Runtime session over (batch, frames, n_mels) log-mel windows -> probabilities.

    ``device``: ``cpu``; ``cuda`` (an error unless the CUDA provider really loads); ``auto``
    (CUDA when it loads, CPU otherwise). ONNX Runtime falls back to CPU silently, so the active
    provider is read back from the session rather than assumed.
    """

    def __init__(self, bundle: Bundle, device: str = "cpu", threads: int = 1):
        import onnxruntime as ort

        if device not in ("cpu", "cuda", "auto"):
            raise ModelError(f"device must be cpu, cuda or auto, not {device!r}")
        self.bundle = bundle
        self.labels = bundle.meta.labels
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        wants_cuda = device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers()
        providers = (["CUDAExecutionProvider"] if wants_cuda else []) + ["CPUExecutionProvider"]
        self._session = open_session(bundle.onnx_path, opts, providers)
        self.provider = self._session.get_providers()[0]
        if device == "cuda" and self.provider != "CUDAExecutionProvider":
            raise ModelError(
                "CUDA was required but ONNX Runtime could not activate it (needs a GPU, onnxruntime-gpu "
                "and the CUDA 13 and cuDNN 9 libraries); drop --require-gpu to run on CPU"
            )
        if wants_cuda and self.provider != "CUDAExecutionProvider":
            log.info("CUDA is not usable here (no GPU or no CUDA 13/cuDNN 9 libraries): running on CPU")
        log.info("inference provider: %s", self.provider)
        self._check_io()

    def _check_io(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        where = f"model bundle {self.bundle.path}"
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{where}: model.onnx must have one input and one output")
        shape = inputs[0].shape
        if len(shape) != 3 or shape[2] != self.bundle.input_width:
            raise ModelError(f"{where}: input shape {shape} is not (batch, frames, {self.bundle.input_width})")
        out = outputs[0].shape
        if len(out) != 2 or out[1] != len(self.labels):
            raise ModelError(f"{where}: output shape {out} does not match {len(self.labels)} labels")
        self._input = inputs[0].name
        if self.bundle.meta.encoder:
            encoder_session(self.bundle, self.provider)  # an encoder that cannot serve fails here, before any stream

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of windows, shape (batch, n_labels).

        Runs at most ``MAX_BATCH`` windows per call: ONNX Runtime's arena keeps the activations of
        the largest batch it ever saw (300 windows hold 270 MB), and beyond a few dozen windows a
        bigger batch buys no speed.
        """
        if len(windows) == 0:
            return np.empty((0, len(self.labels)), np.float32)
        x = np.ascontiguousarray(windows, np.float32)
        return np.concatenate(
            [self._session.run(None, {self._input: x[i : i + MAX_BATCH]})[0] for i in range(0, len(x), MAX_BATCH)]
        )
