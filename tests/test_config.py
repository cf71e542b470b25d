import textwrap

import pytest
from helpers import rtgenre
from test_cli import assert_one_line_error

from rtgenre.config import ConfigError, load_config

GOOD = """\
feed:
  endpoint: tcp://127.0.0.1:5590
streams:
  - id: a
    source: file
    path: a.ogg
    hop: 0.5
  - id: b
    source: device
"""


def write(tmp_path, text: str):
    f = tmp_path / "config.yaml"
    f.write_text(textwrap.dedent(text))
    return f


def test_a_good_config_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert [s.id for s in cfg.streams] == ["a", "b"]
    assert cfg.streams[0].hop == 0.5 and cfg.streams[1].device == "mic"
    assert cfg.provider == "auto" and cfg.metrics.port == 9108


def test_the_shipped_config_is_valid():
    from helpers import ROOT

    cfg = load_config(ROOT / "config.yaml")
    assert cfg.streams[0].source == "device"


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace("hop: 0.5", "hopp: 0.5"), r"config.yaml:7: streams\[0\].hopp: unknown key"),
        (GOOD.replace("hop: 0.5", "hop: fast"), r"config.yaml:7: streams\[0\].hop: must be a float, not 'fast'"),
        (GOOD.replace("hop: 0.5", "hop: 9"), r"config.yaml:7: streams\[0\].hop: 9.0 is out of range \[0.05, 3\]"),
        (
            GOOD.replace("hop: 0.5", "hop: 2.5\n    window: 2"),
            r"config.yaml:4: streams\[0\].hop: hop 2.5 s is longer than the window \(2 s\)",
        ),
        (GOOD.replace("id: b", "id: a"), r"config.yaml:8: streams\[1\].id: duplicate stream id 'a'"),
        (GOOD.replace("    path: a.ogg\n", ""), r"config.yaml:4: streams\[0\].path: required for a file source"),
        (GOOD.replace("source: device", "source: radio"), r"config.yaml:9: streams\[1\].source: must be one of"),
        (GOOD + "threads: 0\n", r"config.yaml:10: threads: 0 is out of range"),
        ("streams: []\n", r"config.yaml:1: streams: must list at least one stream"),
        ("feed: {}\n", r"config.yaml:1: streams: missing \(required\)"),
        ("streams:\n  - id: [a\n", r"config.yaml:\d+: not valid YAML"),
        (GOOD.replace("endpoint: tcp", "endpoint:\n    - tcp"), r"config.yaml:3: feed.endpoint: must be a str"),
    ],
)
def test_errors_name_the_file_line_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_serve_refuses_a_bad_config_in_one_line(tmp_path):
    r = rtgenre("serve", "--config", str(write(tmp_path, GOOD.replace("hop: 0.5", "hop: -1"))))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"rtgenre: error: {tmp_path}/config.yaml:7: streams[0].hop: -1.0 is out of range [0.05, 3]"
    ]


def test_serve_refuses_an_unreadable_model(tmp_path):
    r = rtgenre("serve", "--config", str(write(tmp_path, "model: nowhere\n" + GOOD)))
    assert r.returncode == 1 and "no such directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_model_by_name_or_by_directory(tmp_path):
    assert load_config(write(tmp_path, "model: musicnn-gtzan\n" + GOOD)).model == "musicnn-gtzan"
    (tmp_path / "mine").mkdir()
    assert load_config(write(tmp_path, "model: mine\n" + GOOD)).model == str((tmp_path / "mine").resolve())


def test_yaml_nested_thousands_deep_is_a_one_line_error(tmp_path):
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("streams: " + "[" * 5000 + "]" * 5000)
    assert_one_line_error(rtgenre("serve", "--config", str(cfg)), "nested too deeply")


def test_a_bad_stream_id_in_the_config_names_its_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("streams:\n  - id: ok\n    source: device\n  - id: 'bad id!'\n    source: device\n")
    assert_one_line_error(rtgenre("serve", "--config", str(cfg)), f"{cfg}:4: streams[1].id: invalid stream id")
