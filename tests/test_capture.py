"""Live capture through a real PortAudio -> ALSA -> PulseAudio null-sink path."""

import json
import os
import signal
import subprocess
import sys
import threading
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


class Listening:
    """`rtgenre listen` on the private server, publishing on a port of its own; its JSON lines read as they come."""

    def __init__(self, pulse, *args: str):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtgenre", "listen", "--device", "pulse", "--json", "--endpoint", endpoint, *args],
            env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.msgs: list[dict] = []
        self._err: list[str] = []
        self._readers = [threading.Thread(target=lambda: self.msgs.extend(map(json.loads, self.proc.stdout))),
                         threading.Thread(target=lambda: self._err.extend(self.proc.stderr))]  # fmt: skip
        for t in self._readers:
            t.start()
        wait_for(lambda: pulse.pactl("list", "short", "source-outputs").strip(), what="listen recording")

    def wait_for(self, predicate, what: str) -> None:
        wait_for(lambda: predicate(list(self.msgs)), what=what)

    def finish(self, timeout: float = 60) -> tuple[list[dict], str]:
        """Its messages and stderr once it has exited."""
        self.proc.wait(timeout)
        for t in self._readers:
            t.join(5)
        return self.msgs, "".join(self._err)


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def sounding(msgs: list[dict]) -> int:
    return sum(m["type"] == "window" and m["state"] == "genre" for m in msgs)


def test_devices_lists_the_pulse_device(pulse):
    r = subprocess.run([sys.executable, "-m", "rtgenre", "devices"], env=pulse.env, capture_output=True, text=True)
    assert r.returncode == 0 and "pulse" in r.stdout


def test_listen_classifies_a_track_played_into_the_sink(pulse, data):
    track = data / "gtzan" / "classical" / "classical.00000.ogg"  # the model gets it right offline
    listening = Listening(pulse, "--duration", "14")
    player = pulse.play(track)
    msgs, err = listening.finish()
    player.kill()
    assert listening.proc.returncode == 0, err
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
    listening = Listening(pulse)
    listening.wait_for(lambda msgs: msgs, "its first message")
    t0 = time.monotonic()
    listening.proc.send_signal(signal.SIGTERM)
    msgs, _ = listening.finish(timeout=10)
    assert time.monotonic() - t0 < 2.0
    assert listening.proc.returncode == 0
    eos = msgs[-1]
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
    listening = Listening(pulse, "--duration", "22")
    player = pulse.play(track)
    listening.wait_for(lambda msgs: sounding(msgs) >= 3, "classified windows before the restart")
    player.kill()
    pulse.stop()
    listening.wait_for(lambda msgs: any(m["type"] == "heartbeat" and m["source"]["state"] == "device lost"
                                        for m in msgs), "the loss reported")  # fmt: skip
    pulse.start()
    player = pulse.play(track)
    msgs, err = listening.finish()
    player.kill()
    assert listening.proc.returncode == 0, err
    lost = [i for i, m in enumerate(msgs) if m["type"] == "heartbeat" and m["source"]["state"] == "device lost"]
    assert lost, "the loss of the device was not reported on the feed"
    after = [m for m in msgs[lost[0] :] if m["type"] == "window" and m["state"] == "genre"]
    assert len(after) >= 5  # classifying again after the restart
    assert msgs[-1]["source"]["reconnects"] >= 1
