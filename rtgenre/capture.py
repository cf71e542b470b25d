"""Live capture through PortAudio (sounddevice): device listing and choice, and a capture stream
that survives its device going away.

The PortAudio callback only copies the raw block into a ring and notes the time; downmixing,
resampling and everything else happen on the consumer's side. A device that stops delivering
(unplugged, sound server restarted) is closed and reopened with backoff while the process runs on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .audio import Resampler, SourceInfo, to_mono
from .backoff import Backoff
from .errors import AudioError
from .ring import Ring

log = logging.getLogger(__name__)

PREFERRED = ("pulse", "pipewire")
_EMPTY = np.zeros(0, np.float32)
_open_lock = threading.Lock()
_open_streams: set[int] = set()  # captures with a live PortAudio stream in this process
STALL_S = 1.5  # no audio for this long: the device is gone
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)


def _sd():
    try:
        import sounddevice
    except OSError as e:  # libportaudio2 is missing
        raise AudioError(f"live capture needs PortAudio (Debian: apt-get install libportaudio2): {e}") from None
    return sounddevice


@dataclass(frozen=True)
class Device:
    """A PortAudio input device as `rtgenre devices` lists it."""

    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float


def input_devices() -> list[Device]:
    sd = _sd()
    apis = sd.query_hostapis()
    return [
        Device(i, d["name"], apis[d["hostapi"]]["name"], d["max_input_channels"], d["default_samplerate"])
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]


def select_device(spec: str, devices: list[Device] | None = None) -> Device:
    """``mic`` (the default input), an index, or a case-insensitive part of a device name."""
    devices = input_devices() if devices is None else devices
    if not devices:
        raise AudioError("no input devices found (is a sound server running?)")
    available = "; ".join(f"{d.index}: {d.name}" for d in devices)
    if spec == "mic":
        default = _sd().default.device[0]
        match = [d for d in devices if d.index == default] or devices[:1]
        return match[0]
    if spec.isdigit():
        match = [d for d in devices if d.index == int(spec)]
        if not match:
            raise AudioError(f"no input device with index {spec}; input devices: {available}")
        return match[0]
    match = [d for d in devices if spec.lower() in d.name.lower()]
    if len(match) > 1:
        preferred = [d for d in match if "hw:" not in d.name and any(p in d.name.lower() for p in PREFERRED)]
        match = preferred if len(preferred) == 1 else match
    if not match:
        raise AudioError(f"no input device matches {spec!r}; input devices: {available}")
    if len(match) > 1:
        raise AudioError(f"{spec!r} matches several input devices: {'; '.join(f'{d.index}: {d.name}' for d in match)}")
    return match[0]


class Capture:
    """A device as a source of mono blocks at ``sample_rate``, reopened when it goes away.

    Iterate it from the consumer thread; ``stop()`` (from a signal handler, say) ends the
    iteration within one poll interval. ``state`` is ``capturing`` or ``device lost``.
    """

    end_reason = "stopped"

    def __init__(self, device: Device, sample_rate: int, buffer_s: float = 5.0, poll_s: float = 0.02):
        self.device = device
        self.sample_rate = sample_rate
        self.rate = int(device.default_rate)
        self.channels = max(1, min(device.channels, 2))
        self.info = SourceInfo(device.name, self.rate, self.channels, None)
        self.ring = Ring(int(buffer_s * self.rate), (self.channels,))
        self.overflows = 0  # PortAudio input overflows: audio lost before it reached us
        self.reconnects = 0
        self.state = "starting"
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._clock = np.zeros(2)  # (frames written when the last block's end was captured, wall time)
        self._stream = None
        self._newest: float | None = None

    # -- runs on PortAudio's thread: copy and note the time, nothing else ------------------
    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.ring.write(indata)
        now = time.time()
        self._clock[1] = now - (time_info.currentTime - time_info.inputBufferAdcTime) + frames / self.rate
        self._clock[0] = self.ring.written

    # -- consumer side --------------------------------------------------------------------
    def capture_time(self, frame: int) -> float:
        """Wall-clock capture time of the device frame that brought the count written to ``frame``."""
        return float(self._clock[1] - (self._clock[0] - frame) / self.rate)

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict:
        return {
            "device": self.device.name,
            "state": self.state,
            "overflows": self.overflows,
            "ring_overruns": self.ring.overruns,
            "reconnects": self.reconnects,
        }

    def newest_sample_time(self) -> float | None:
        return self._newest

    def __iter__(self) -> Iterator[np.ndarray]:
        """Mono blocks at the model rate; an empty block on each idle poll, so the consumer
        keeps its heartbeats going while the device is silent or gone."""
        resample = Resampler(self.rate, self.sample_rate)
        backoff, seen_overflows, last_report = Backoff(BACKOFF_S), 0, 0.0
        idle_since: float | None = None
        while not self._stop.is_set():
            if self._stream is None and not self._open():
                self._stop.wait(backoff.next_delay())
                yield _EMPTY
                continue
            backoff.reset()
            if self._stop.wait(self._poll_s):
                break
            if self.overflows > seen_overflows:
                if time.monotonic() - last_report > 1.0:  # once per burst
                    log.warning("input overflow: audio was lost before it reached rtgenre (%d so far)", self.overflows)
                seen_overflows, last_report = self.overflows, time.monotonic()
            if self.ring.available:
                idle_since = None
                raw = self.ring.read(self.ring.available)
                self._newest = self.capture_time(self.ring.consumed)
                yield resample(to_mono(raw))
                continue
            # a stall must be seen by this loop itself, so a process that was suspended
            # (SIGSTOP, a laptop lid) does not mistake its own pause for a lost device
            idle_since = idle_since or time.monotonic()
            if not self._stream.active or time.monotonic() - idle_since > STALL_S:
                idle_since = None
                self._lost()
            yield _EMPTY
        self._close()
        self.state = "stopped"

    def _open(self) -> bool:
        sd = _sd()
        try:
            with _open_lock:
                if not _open_streams:  # PortAudio caches the device list: refresh it, if no stream would die
                    sd._terminate()
                    sd._initialize()
            self._stream = sd.InputStream(
                device=self.device.index,
                channels=self.channels,
                samplerate=self.rate,
                dtype="float32",
                callback=self._callback,
            )
            self._stream.start()
            with _open_lock:
                _open_streams.add(id(self))
        except Exception as e:  # PortAudioError, or a device index that vanished
            log.warning("cannot open %s: %s; retrying", self.device.name, str(e).splitlines()[0])
            self._close()
            self.state = "device lost"
            return False
        if self.state == "device lost":
            self.reconnects += 1
            log.warning("%s is back; capturing again", self.device.name)
        self.state = "capturing"
        return True

    def _lost(self) -> None:
        log.warning("%s stopped delivering audio; reopening", self.device.name)
        self.state = "device lost"
        self._close()

    def _close(self) -> None:
        with _open_lock:
            _open_streams.discard(id(self))
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:  # closing a stream whose server is gone may fail too; it is gone either way
                pass
            self._stream = None
