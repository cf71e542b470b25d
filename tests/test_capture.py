"""Live capture through a real PortAudio -> ALSA -> PulseAudio null-sink path."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import free_port

from rtgenre.capture import Capture, Device, select_device
from rtgenre.errors import AudioError
from rtgenre.model import load_bundle
from rtgenre.pipeline import StreamPipeline, StreamSettings, run_source

pytestmark = pytest.mark.slow  # real daemons, devices, browsers or installs: `make test-fast` skips them

DEVICES = [
    Device(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 44100),
    Device(1, "USB Mic: Audio (hw:1,0)", "ALSA", 1, 48000),
    Device(5, "pulse", "ALSA", 32, 44100),
    Device(6, "pipewire", "ALSA", 64, 48000),
]


def test_device_by_index_and_by_name():
    assert select_device("1", DEVICES).name.startswith("USB Mic")
    assert select_device("usb", DEVICES).index == 1
    assert select_device("PIPEWIRE", DEVICES).index == 6


def test_a_pulse_entry_wins_over_raw_hw_ones():
    devices = DEVICES + [Device(7, "Pulse-Eight USB-CEC (hw:2,0)", "ALSA", 2, 44100)]
    assert select_device("pulse", devices).index == 5


def test_default_input_is_used_for_mic(pulse):
    os.environ.update(pulse.env)  # this process's PortAudio must find the test server
    assert select_device("mic").name in ("default", "pulse")


def test_unknown_and_ambiguous_names_list_the_candidates():
    with pytest.raises(AudioError, match=r"no input device matches 'zzz'; input devices: 0: HDA"):
        select_device("zzz", DEVICES)
    with pytest.raises(AudioError, match=r"matches several input devices: 0: HDA.*1: USB"):
        select_device("hw:", DEVICES)
    with pytest.raises(AudioError, match="no input device with index 9"):
        select_device("9", DEVICES)


def listen(pulse, *args: str) -> subprocess.Popen:
    """`rtgenre listen` on the private server, publishing on a port of its own."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    return subprocess.Popen(
        [sys.executable, "-m", "rtgenre", "listen", "--device", "pulse", "--json", "--endpoint", endpoint, *args],
        env=pulse.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def messages(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_devices_lists_the_pulse_device(pulse):
    r = subprocess.run([sys.executable, "-m", "rtgenre", "devices"], env=pulse.env, capture_output=True, text=True)
    assert r.returncode == 0 and "pulse" in r.stdout


def test_listen_classifies_a_track_played_into_the_sink(pulse, data):
    track = data / "gtzan" / "classical" / "classical.00000.ogg"  # the model gets it right offline
    proc = listen(pulse, "--duration", "14")
    time.sleep(1.0)
    player = pulse.play(track)
    out, err = proc.communicate(timeout=60)
    player.kill()
    assert proc.returncode == 0, err
    msgs = messages(out)
    windows = [m for m in msgs if m["type"] == "window" and m["state"] != "silence"]
    assert len(windows) >= 10
    late = windows[len(windows) // 2 :]
    assert all(m["smoothed_top"] == "classical" for m in late), [m["smoothed_top"] for m in late]
    # each window carries the capture time of its last sample: a subscriber can measure latency (the default
    # model's streaming encoder adds its lag: a frame's row waits for the audio its widest filter looks ahead to)
    meta = load_bundle().meta
    lag_s = meta.encoder.lag / meta.frontend.frame_rate if meta.encoder else 0.0
    assert all(0 <= m["wall"] - m["captured"] < 1.0 + lag_s for m in windows)
    assert msgs[-1]["type"] == "eos" and msgs[-1]["source"]["state"] == "stopped"


def test_sigterm_stops_within_two_seconds_with_end_of_stream(pulse):
    proc = listen(pulse)
    time.sleep(4)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 0
    eos = messages(out)[-1]
    assert eos["type"] == "eos" and eos["reason"] == "stopped"


def test_a_stalled_consumer_counts_its_overruns(pulse, bundle, classifier):
    os.environ.update(pulse.env)
    capture = Capture(select_device("pulse"), 22050, buffer_s=1.0)
    blocks = iter(capture)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # capturing normally
        next(blocks)
    assert capture.ring.overruns == 0
    time.sleep(3.0)  # the consumer stalls; PortAudio keeps writing into the 1 s ring
    next(blocks)
    assert capture.ring.overruns > capture.rate  # more than a second of audio was lost, and counted
    capture.stop()
    for _ in blocks:
        pass
    pipe = StreamPipeline(bundle, StreamSettings(), None, classifier.provider)
    eos = run_source(capture, pipe, classifier, realtime=False)
    assert eos["source"]["ring_overruns"] == capture.ring.overruns


def test_a_sound_server_restart_is_survived(pulse, data):
    track = data / "gtzan" / "classical" / "classical.00000.ogg"
    proc = listen(pulse, "--duration", "22")
    time.sleep(1.0)
    player = pulse.play(track)
    time.sleep(5.0)
    player.kill()
    pulse.stop()
    time.sleep(2.0)
    pulse.start()
    player = pulse.play(track)
    out, err = proc.communicate(timeout=60)
    player.kill()
    assert proc.returncode == 0, err
    msgs = messages(out)
    lost = [i for i, m in enumerate(msgs) if m["type"] == "heartbeat" and m["source"]["state"] == "device lost"]
    assert lost, "the loss of the device was not reported on the feed"
    after = [m for m in msgs[lost[0] :] if m["type"] == "window" and m["state"] == "genre"]
    assert len(after) >= 5  # classifying again after the restart
    assert msgs[-1]["source"]["reconnects"] >= 1
