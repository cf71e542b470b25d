"""The feed's messages, defined once: the pipeline builds them, the publisher stamps them, readers parse
them, and ``feed.schema.json`` (a JSON Schema generated from these classes, shipped with the package and
printed by ``rtgenre schema``) lets a client in any language rely on them.

A message is one flat JSON object: the envelope (``v``, ``type``, ``stream``, ``seq``, ``wall``) and the
fields of its type. Probabilities are objects keyed by genre label, so a client needs no label order.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("feed.schema.json")

Probs = dict[str, float]  # genre label -> probability
SmoothedState = Literal["genre", "uncertain", "silence"]
VerdictState = Literal["genre", "silence", "too short"]
GENRE, UNCERTAIN, SILENCE = typing.get_args(SmoothedState)  # the names code compares with, from the one list
TOO_SHORT = typing.get_args(VerdictState)[2]


@dataclass(frozen=True)
class Envelope:
    """What the publisher adds to every message: a reader's per-stream ``seq`` gaps are its own losses."""

    v: int
    type: str
    stream: str
    seq: int
    wall: float  # publisher's Unix time at sending


@dataclass(frozen=True)
class Stats:
    """A stream's counters so far."""

    windows: int
    audio_overruns: int  # samples lost because classification fell behind
    frame_overruns: int
    skipped_windows: int  # windows of audio dropped unheard because the daemon fell behind (its backlog bound)
    latency_ms_p50: float | None  # hop-to-publish latency of recent windows; None before the first
    latency_ms_p99: float | None
    provider: str  # the ONNX Runtime execution provider


@dataclass(frozen=True)
class Verdict:
    """A whole stream's genre: the mean of its non-silent windows."""

    genre: str | None
    confidence: float
    probs: Probs | None
    state: VerdictState
    windows: int
    padded: bool  # the input was shorter than one window and was looped to fill it
    lyrics: bool  # lyrics were fused into the probabilities


@dataclass(frozen=True)
class SmoothedFields:
    """The smoothed estimate a window or heartbeat carries: what a display should show now."""

    smoothed: Probs | None
    smoothed_top: str | None
    smoothed_confidence: float
    state: SmoothedState


@dataclass(frozen=True)
class Window(SmoothedFields):
    """One classified window of audio (seconds from the stream's start)."""

    type: ClassVar[str] = "window"
    t0: float
    t1: float
    captured: float  # Unix time the window's last sample was captured
    probs: Probs | None  # None for a silent window
    top: str | None
    confidence: float
    level_dbfs: float
    padded: bool
    model: str
    provider: str
    lyrics: bool
    audio_probs: Probs | None  # the audio model's own probabilities when lyrics are fused


@dataclass(frozen=True)
class Heartbeat(SmoothedFields):
    """Sent when a stream has been quiet for the heartbeat interval, and first to a new stream's readers."""

    type: ClassVar[str] = "heartbeat"
    t: float  # seconds of audio so far
    source: dict[str, Any]  # the source's own status (device, state, reconnects, truncated, error, …)
    stats: Stats


@dataclass(frozen=True)
class Eos:
    """The end of a stream, however it ended (``reason``), with its verdict."""

    type: ClassVar[str] = "eos"
    reason: str
    verdict: Verdict
    source: dict[str, Any]
    stats: Stats


Body = Window | Heartbeat | Eos
BODIES: dict[str, type] = {cls.type: cls for cls in (Window, Heartbeat, Eos)}


def to_json(message: Body | Envelope | Verdict | Stats) -> dict:
    """``dataclasses.asdict`` without its deep copies: every dict a message holds is built for it alone, and
    copying them took a fifth of a daemon's time at 300 streams."""
    return {name: to_json(v) if dataclasses.is_dataclass(v := getattr(message, name)) else v
            for name in _names(type(message))}  # fmt: skip


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def parse(msg: dict) -> Body:
    """A received message's body as a typed object (the envelope's fields are left out; a message that does
    not fit the schema raises ``KeyError`` or ``TypeError``)."""
    return _build(BODIES[msg["type"]], msg)


def _build(cls: type, values: dict) -> Any:
    return cls(**{name: _build(kind, values[name]) if kind else values[name] for name, kind in _nested(cls)})


@functools.cache
def _nested(cls: type) -> tuple[tuple[str, type | None], ...]:
    """Each field's name and its dataclass type if it is one (type hints resolved once per class: resolving
    them per message was a fifth of a whole-file classify)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else None)
                 for f in dataclasses.fields(cls))  # fmt: skip


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of every message, generated from the classes above."""
    defs: dict[str, dict] = {}
    envelope = _object(Envelope, defs)
    variants = []
    for name, cls in BODIES.items():
        body = _object(cls, defs)
        properties = {**envelope["properties"], **body["properties"], "type": {"const": name}}
        variants.append({"title": cls.__name__, "description": _doc(cls), "type": "object", "properties": properties,
                         "required": list(properties), "additionalProperties": False})  # fmt: skip
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/rtgenre/rtgenre/feed.schema.json",
        "title": f"rtgenre feed message, schema version {SCHEMA_VERSION}",
        "description": "One JSON object per ZeroMQ frame, after the topic 'genre.<stream> '.",
        "oneOf": variants,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())


def _object(cls: type, defs: dict) -> dict:
    hints = typing.get_type_hints(cls)
    properties = {f.name: _type(hints[f.name], defs) for f in dataclasses.fields(cls)}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _type(hint: Any, defs: dict) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return {"anyOf": [_type(a, defs) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is dict:
        values = {} if args[1] is Any else {"additionalProperties": _type(args[1], defs)}
        return {"type": "object", **values}
    if dataclasses.is_dataclass(hint):
        if hint.__name__ not in defs:
            defs[hint.__name__] = {"description": _doc(hint), **_object(hint, defs)}
        return {"$ref": f"#/$defs/{hint.__name__}"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    return {"type": simple[hint]}
