"""Audio sources: decode, downmix and resample to float32 mono blocks at the model's rate.

Files are decoded block by block, so an hour-long file streams in bounded memory. Every
failure (missing file, not audio, no samples, NaN/Inf samples) is an ``AudioError`` whose
message names the file and says what is wrong in one line.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".au", ".aiff", ".aif", ".opus"})  # ours to read


@dataclass(frozen=True)
class SourceInfo:
    """What a source says of itself before it is read: name, native rate, channels, duration (None if live)."""

    name: str
    sample_rate: int  # the source's own rate, before resampling
    channels: int
    duration_s: float | None  # None for live sources


log = logging.getLogger(__name__)


def to_mono(block: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) block."""
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    if block.shape[1] == 1:
        return block[:, 0].astype(np.float32, copy=False)
    return block.mean(axis=1, dtype=np.float32)


class Resampler:
    """Streaming resampler; a pass-through when the rates already match."""

    def __init__(self, in_rate: int, out_rate: int):
        self._stream = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        )

    def __call__(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono, last=last)


class Source(Protocol):
    """What the pipeline needs of a source: mono float32 blocks at the model rate (empty blocks
    while a live source has nothing new, so the consumer can still send heartbeats)."""

    info: SourceInfo
    end_reason: str

    def __iter__(self) -> Iterator[np.ndarray]: ...

    def status(self) -> dict: ...

    def newest_sample_time(self) -> float | None: ...

    def stop(self) -> None:
        """Make the iteration end soon; safe to call from another thread."""


class ClocklessSource:
    """What the non-live sources share: no capture clock (a sample "arrives" when it is handed
    over), no status of their own, and a stop flag their iteration checks."""

    end_reason = "end of stream"
    _stopped = False

    def stop(self) -> None:
        self._stopped = True

    def status(self) -> dict:
        return {}

    def newest_sample_time(self) -> float | None:
        return None


class FileSource(ClocklessSource):
    """An audio file as an iterator of mono float32 blocks at ``sample_rate``.

    The header is read and checked here, so a bad file fails before any work; the file is open only while
    it is iterated, so a source that is never read holds no file."""

    end_reason = "end of file"

    def __init__(self, path: str, sample_rate: int, block_seconds: float = 1.0):
        self.path = path
        self.sample_rate = sample_rate
        with _open(path) as f:
            self.info = SourceInfo(name=path, sample_rate=f.samplerate, channels=f.channels,
                                   duration_s=f.frames / f.samplerate)  # fmt: skip
            self._mp3 = f.format == "MP3"
            if f.frames == 0:
                raise AudioError(f"{path}: contains no audio samples")
        self._block = max(1, int(block_seconds * self.info.sample_rate))
        self.truncated: str | None = None  # why the file ended early, once it has been read to its end
        self._scratch = None  # an MP3's: where libmpg123's stderr notes go while a block decodes

    def status(self) -> dict:
        return {"truncated": True, "truncated_reason": self.truncated} if self.truncated else {}

    def __iter__(self) -> Iterator[np.ndarray]:
        resample = Resampler(self.info.sample_rate, self.sample_rate)
        read = 0
        if self._mp3:
            self._scratch = tempfile.TemporaryFile()  # one per file: a block of 0.02 s is decoded 50 times a second
        try:
            with _open(self.path) as f:
                while not self._stopped:
                    try:
                        with self._decoding():
                            raw = f.read(self._block, dtype="float32", always_2d=True)
                    except (sf.LibsndfileError, RuntimeError) as e:
                        raise AudioError(
                            f"{self.path}: decoding failed after {read / self.info.sample_rate:.1f} s: {e}"
                        ) from None
                    if len(raw) and not np.isfinite(raw).all():
                        bad = read + int(np.argmax(~np.isfinite(raw).all(axis=1)))
                        raise AudioError(f"{self.path}: NaN or infinite sample at {bad / self.info.sample_rate:.2f} s")
                    read += len(raw)
                    last = len(raw) < self._block
                    if last:
                        self.truncated = _ended_early(self.path, read, f.frames)
                        if self.truncated:
                            log.warning("%s: truncated (%s); classified from what remains", self.path, self.truncated)
                    out = resample(to_mono(raw), last=last)
                    if len(out):
                        yield out
                    if last:
                        return
        finally:
            if self._scratch is not None:
                self._scratch.close()

    def whole(self) -> np.ndarray:
        """Every block at once: a whole track, for training and benchmarks (a stream iterates instead)."""
        return np.concatenate(list(self))

    def _decoding(self) -> AbstractContextManager:
        return _quiet_mpg123(self.path, self._scratch) if self._scratch is not None else nullcontext()


_STDERR_LOCK = threading.Lock()
_MPG123_NOTE = b"[src/libmpg123/"


@contextmanager
def _quiet_mpg123(path: str, scratch: BinaryIO) -> Iterator[None]:
    """libmpg123, inside libsndfile, writes notes such as "part2_3_length too large" straight to the
    process's stderr while decoding valid MP3s (the samples equal ffmpeg's decode). While a block
    decodes, file descriptor 2 points at a scratch file: libmpg123's lines become debug records of
    rtgenre's log, and whatever else was written meanwhile (another thread's log) goes back to stderr."""
    with _STDERR_LOCK:
        sys.stderr.flush()
        scratch.seek(0)
        scratch.truncate()
        saved = os.dup(2)
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            scratch.seek(0)
            for line in scratch:
                if line.startswith(_MPG123_NOTE):
                    log.debug("%s: libmpg123: %s", path, line.decode(errors="replace").rstrip())
                else:
                    os.write(2, line)


class FfmpegSource(ClocklessSource):
    """Anything ffmpeg opens (an internet radio station, an HTTP or RTSP stream, a file) decoded by
    an ffmpeg child process to mono float32 at the model rate. ``-re`` reads at the native rate,
    so a finite input behaves like a live one. A server that accepts the connection and then
    sends nothing would block a read forever: ``stall_s`` without a byte is a failure instead."""

    def __init__(self, url: str, sample_rate: int, block_seconds: float = 0.1, stall_s: float = 10.0):
        if shutil.which("ffmpeg") is None:
            raise AudioError(f"{url}: URL sources need ffmpeg (Debian: apt-get install ffmpeg)")
        self.url = url
        self.sample_rate = sample_rate
        self.info = SourceInfo(url, sample_rate, 1, None)
        self._bytes = 4 * max(1, int(block_seconds * sample_rate))
        self._stall_s = stall_s
        self._proc: subprocess.Popen | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i", self.url,
               "-f", "f32le", "-ac", "1", "-ar", str(self.sample_rate), "pipe:1"]  # fmt: skip
        self._proc = proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        fd, rest = proc.stdout.fileno(), b""
        try:
            while True:
                if not select.select([fd], [], [], self._stall_s)[0]:
                    if self._stopped:
                        return
                    raise AudioError(f"{self.url}: no audio for {self._stall_s:g} s (the source stalled)")
                data = os.read(fd, self._bytes)
                if not data:
                    break
                data, cut = rest + data, (len(rest) + len(data)) // 4 * 4
                data, rest = data[:cut], data[cut:]
                if data:
                    yield np.frombuffer(data, np.float32)
            if proc.wait() != 0 and not self._stopped:
                lines = proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise AudioError(f"{self.url}: ffmpeg failed ({lines[-1] if lines else f'exit {proc.returncode}'})")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def stop(self) -> None:
        super().stop()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()


class ArraySource(ClocklessSource):
    """Samples already in memory (mono, at the model rate) as a source, in the given blocks."""

    def __init__(self, blocks: list[np.ndarray], sample_rate: int, name: str = "memory"):
        self._blocks = blocks
        self.info = SourceInfo(name, sample_rate, 1, sum(len(b) for b in blocks) / sample_rate)

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self._blocks:
            if self._stopped:
                return
            yield block


def _open(path: str) -> sf.SoundFile:
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied")
    try:
        if path.lower().endswith(".mp3"):  # libmpg123 notes a broken header on stderr as it gives up
            with tempfile.TemporaryFile() as scratch, _quiet_mpg123(path, scratch):
                f = sf.SoundFile(path)
        else:
            f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as e:
        reason = str(e).split(":")[-1].strip() or "unknown error"
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None
    except OSError as e:
        raise AudioError(f"{path}: {e.strerror}") from None
    truncated = _TRUNCATED.search(f.extra_info)
    if truncated and int(truncated.group(2)) not in _UNKNOWN_SIZES:
        f.close()
        declared, present = int(truncated.group(2)), int(truncated.group(3))
        raise AudioError(f"{path}: truncated (header declares {declared} bytes of audio, file holds {present})")
    return f


def _ended_early(path: str, decoded: int, declared: int) -> str | None:
    """Why a compressed file that decoded to its end is nonetheless cut short, or None.

    An MP3's Xing header declares its frame count, so fewer decoded frames mean a cut; an Ogg
    stream's last page carries the end-of-stream flag, so a last page without it means a cut.
    """
    if decoded < declared:
        return f"{decoded} of the {declared} declared frames decoded"
    if path.lower().endswith((".ogg", ".oga", ".opus")):
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 65536))
            tail = f.read()
        page = tail.rfind(b"OggS")
        if page >= 0 and page + 5 < len(tail) and not tail[page + 5] & 0x04:
            return "the last Ogg page is not the end of the stream"
    return None


# libsndfile notes "data : N (should be M)" when a WAV/AU data chunk runs past the end of the file;
# streamed files declare 0 or 0xFFFFFFFF because their length was unknown when the header was written
_TRUNCATED = re.compile(r"^\s*(data|Data Size)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
