"""The feed's message schema: one definition, a committed JSON Schema generated from it, and real messages of
every type that validate against it."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from helpers import rtgenre, tone, write_audio

from rtgenre.messages import BODIES, SCHEMA_FILE, parse, schema_text, to_json

ENVELOPE = ("v", "type", "stream", "seq", "wall")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> list[dict]:
    """Real messages: a song with lyrics beside it (fused windows), and silence (silent windows, no verdict)."""
    tmp = tmp_path_factory.mktemp("messages")
    rng = np.random.default_rng(0)
    song = write_audio(tmp / "song.wav", tone(4.0) * 0.3 + 0.02 * rng.standard_normal(4 * 22050).astype(np.float32),
                       22050)  # fmt: skip
    (tmp / "song.txt").write_text("I got the blues, baby, down by the river all night long\n")
    quiet = write_audio(tmp / "quiet.wav", np.zeros(3 * 22050, np.float32), 22050)
    out = []
    for f in (song, quiet):
        r = rtgenre("replay", "--fast", "--json", "--endpoint", f"ipc://{tmp}/feed", str(f))
        out += [json.loads(line) for line in r.stdout.splitlines() if '"type"' in line]
    return out


def test_the_committed_schema_is_the_one_the_classes_define():
    assert SCHEMA_FILE.read_text() == schema_text(), "regenerate: rtgenre schema > rtgenre/feed.schema.json"
    assert rtgenre("schema").stdout == schema_text()


def test_every_message_type_validates(replayed, validator):
    assert {m["type"] for m in replayed} == set(BODIES)
    windows = [m for m in replayed if m["type"] == "window"]
    assert any(m["audio_probs"] for m in windows) and any(m["probs"] is None for m in windows)
    assert {m["verdict"]["state"] for m in replayed if m["type"] == "eos"} == {"genre", "silence"}
    for m in replayed:
        validator.validate(m)


def test_parsing_gives_back_every_field(replayed):
    for m in replayed:
        assert to_json(parse(m)) == {k: v for k, v in m.items() if k not in ENVELOPE}


@pytest.mark.parametrize("change", ["extra field", "missing field", "wrong type", "unknown state"])
def test_the_schema_refuses_what_the_feed_never_sends(replayed, validator, change):
    m = json.loads(json.dumps(next(m for m in replayed if m["type"] == "window")))
    if change == "extra field":
        m["surprise"] = 1
    elif change == "missing field":
        del m["smoothed_confidence"]
    elif change == "wrong type":
        m["seq"] = "3"
    else:
        m["state"] = "happy"
    assert not validator.is_valid(m)
