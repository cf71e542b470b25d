"""The daemon's configuration: dataclasses, YAML loading, and validation whose every message names
the file, the line and the key, so an operator can fix a config without reading code."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .encoder import ENCODER_BATCH
from .errors import RtgenreError
from .feed import DEFAULT_ENDPOINT, check_stream_id
from .limits import limits
from .model import available_models, check_hop
from .osc import parse_osc_url
from .pipeline import BACKLOG_S, StreamSettings

SOURCES = ("device", "file", "url")
DEFAULT_CONTROL = "tcp://127.0.0.1:5557"
DEFAULT_WEB_PORT = 8765


class ConfigError(RtgenreError):
    """A config the daemon refuses: the message names the file, line and key."""

    pass


@dataclass(frozen=True, kw_only=True)
class StreamSection(StreamSettings):
    """One entry of `streams:`: the pipeline's settings (id, window, hop, smoothing), its source and pacing."""

    source: str = field(metadata=limits(choices=SOURCES))
    device: str = "mic"  # source: device
    path: str | None = None  # source: file
    loop: bool = False  # source: file
    speed: float = field(default=1.0, metadata=limits(0.1, 100.0))  # source: file, × real time
    url: str | None = None  # source: url (decoded by ffmpeg)
    stall_timeout: float = field(default=10.0, metadata=limits(1.0, 600.0))  # source: url, s without audio = failed
    osc: list[str] = field(default_factory=list, metadata={"check": parse_osc_url})  # OSC targets, this stream


@dataclass(frozen=True)
class FeedSection:
    """`feed:`: where the ZeroMQ publisher binds, its queue depth, heartbeat and CurveZMQ keys."""

    endpoint: str = DEFAULT_ENDPOINT
    hwm: int = field(default=1000, metadata=limits(1, 1_000_000))
    heartbeat: float = field(default=1.0, metadata=limits(0.1, 60))
    curve_secret_key: str | None = None  # enables CurveZMQ: this server's secret key file
    curve_authorized_keys: str | None = None  # directory of client public keys allowed to subscribe
    connect: list[str] = field(default_factory=list)  # rtgenre proxy frontends to publish to as well


@dataclass(frozen=True)
class ControlSection:
    """`control:`: the control socket's endpoint (status and lyrics requests)."""

    endpoint: str = DEFAULT_CONTROL


@dataclass(frozen=True)
class MetricsSection:
    """`metrics:`: the Prometheus endpoint (port 0 turns it off)."""

    address: str = "127.0.0.1"
    port: int = field(default=9108, metadata=limits(0, 65535))  # 0 disables the endpoint


@dataclass(frozen=True)
class WebSection:
    """`web:`: the live page and its upload form (port 0 turns it off)."""

    address: str = "127.0.0.1"
    port: int = field(default=DEFAULT_WEB_PORT, metadata=limits(0, 65535))
    max_upload_mb: float = field(default=100.0, metadata=limits(0.001, 10_000.0))


@dataclass(frozen=True)
class LyricsSection:
    """`lyrics:`: the lyric model and the weight of lyrics as evidence; the range is the one every entrance checks."""

    model: str | None = None  # lyric model bundle; None: the shipped models/lyrics-minilm
    weight: float = field(default=0.5, metadata=limits(0.0, 1.0))  # 0 ignores lyrics, 1 trusts them fully


@dataclass(frozen=True)
class ServeConfig:
    """The whole `serve` config; field metadata carries the ranges that the CLI and control socket reuse."""

    streams: list[StreamSection]
    model: str | None = None  # a shipped model's name (rtgenre models) or a bundle directory; None: the default
    provider: str = field(default="auto", metadata=limits(choices=("auto", "cpu", "cuda")))
    threads: int = field(default=1, metadata=limits(1, 256))
    encoder_batch: int = field(default=ENCODER_BATCH, metadata=limits(1, 256))  # streams per encoder call
    backlog: float = field(default=BACKLOG_S, metadata=limits(0.5, 10.0))  # audio seconds a stream may wait
    feed: FeedSection = field(default_factory=FeedSection)
    control: ControlSection = field(default_factory=ControlSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    web: WebSection = field(default_factory=WebSection)
    lyrics: LyricsSection = field(default_factory=LyricsSection)
    osc: list[str] = field(default_factory=list, metadata={"check": parse_osc_url})  # OSC targets, every stream


def bounds(cls, name: str) -> tuple[float, float]:
    """The range a config field accepts, for the other entrances (CLI options, control requests) to check."""
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return meta["lo"], meta["hi"]


def check_number(value, cls, name: str) -> float:
    """``value`` as a float within the range of config field ``cls.name``; ValueError naming it otherwise."""
    lo, hi = bounds(cls, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], not {value!r}")
    return float(value)


def load_config(path: str | Path) -> ServeConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if node is None or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}: the config must be a mapping with at least a 'streams' list")
    cfg = _build(ServeConfig, node, path, "")
    _check_streams(cfg, node, path)
    return _resolve_paths(cfg, path.parent)


def _resolve_paths(cfg: ServeConfig, base: Path) -> ServeConfig:
    """Relative paths in the config are relative to the config file, not to the working directory."""

    def resolve(p: str | None) -> str | None:
        return None if p is None else str((base / p).resolve())

    def model(p: str | None) -> str | None:  # a shipped model's name stays a name unless such a folder is here
        return p if p in available_models() and not (base / p).is_dir() else resolve(p)

    feed = dataclasses.replace(
        cfg.feed, curve_secret_key=resolve(cfg.feed.curve_secret_key),
        curve_authorized_keys=resolve(cfg.feed.curve_authorized_keys),
    )  # fmt: skip
    streams = [dataclasses.replace(s, path=resolve(s.path)) for s in cfg.streams]
    lyrics = dataclasses.replace(cfg.lyrics, model=resolve(cfg.lyrics.model))
    return dataclasses.replace(cfg, model=model(cfg.model), feed=feed, streams=streams, lyrics=lyrics)


def _fail(path: Path, node: yaml.Node, key: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"{path}:{node.start_mark.line + 1}: {key}: {message}")


def _build(cls, node: yaml.Node, path: Path, prefix: str):
    if not isinstance(node, yaml.MappingNode):
        _fail(path, node, prefix or "config", "must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("config", True)}
    values = {}
    for key_node, value_node in node.value:
        key = key_node.value
        name = f"{prefix}{key}"
        if key not in fields:
            _fail(path, key_node, name, f"unknown key (known: {', '.join(fields)})")
        if key in values:
            _fail(path, key_node, name, "given twice")
        values[key] = _value(hints[key], value_node, path, name, fields[key].metadata)
    for f in fields.values():
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            _fail(path, node, f"{prefix}{f.name}", "missing (required)")
    return cls(**values)


def _value(hint, node: yaml.Node, path: Path, name: str, meta):
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if dataclasses.is_dataclass(hint):
        return _build(hint, node, path, f"{name}.")
    if typing.get_origin(hint) is list:
        if not isinstance(node, yaml.SequenceNode):
            _fail(path, node, name, "must be a list")
        item = typing.get_args(hint)[0]
        return [_value(item, n, path, f"{name}[{i}]", meta) for i, n in enumerate(node.value)]  # meta: per item
    if not isinstance(node, yaml.ScalarNode):
        _fail(path, node, name, f"must be a {hint.__name__}")
    value = yaml.safe_load(yaml.serialize(node))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        _fail(path, node, name, f"must be a {hint.__name__}, not {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        _fail(path, node, name, f"must be one of {', '.join(map(str, meta['choices']))}, not {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        _fail(path, node, name, f"{value!r} is out of range [{lo:g}, {hi:g}]")
    if check := meta.get("check"):
        try:
            check(value)
        except RtgenreError as e:
            _fail(path, node, name, str(e))
    return value


def _check_streams(cfg: ServeConfig, node: yaml.MappingNode, path: Path) -> None:
    streams_node = next(v for k, v in node.value if k.value == "streams")
    if not cfg.streams:
        _fail(path, streams_node, "streams", "must list at least one stream")
    seen: dict[str, int] = {}
    for i, (s, n) in enumerate(zip(cfg.streams, streams_node.value, strict=True)):
        try:
            check_stream_id(s.id)
        except RtgenreError as e:
            _fail(path, n, f"streams[{i}].id", str(e))
        if s.id in seen:
            _fail(path, n, f"streams[{i}].id", f"duplicate stream id {s.id!r} (also streams[{seen[s.id]}])")
        seen[s.id] = i
        need = {"file": "path", "url": "url"}.get(s.source)
        if need and getattr(s, need) is None:
            _fail(path, n, f"streams[{i}].{need}", f"required for a {s.source} source")
        if s.window is not None and s.hop is not None:
            try:
                check_hop(s.hop, s.window)
            except RtgenreError as e:
                _fail(path, n, f"streams[{i}].hop", str(e))
