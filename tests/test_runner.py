"""A configured stream's runner: its source reopened with backoff, the backoff started over once it delivers."""

import os
import shutil
import time

from rtgenre.audio import FileSource
from rtgenre.config import StreamSection
from rtgenre.feed import Publisher
from rtgenre.runner import StreamRunner


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_stream_that_recovers_starts_its_backoff_over_and_keeps_its_failure_count(data, tmp_path, bundle, endpoint):
    path = tmp_path / "late.ogg"
    section = StreamSection(id="late", source="file", path=str(path), loop=True, speed=20.0)
    publisher = Publisher(endpoint)
    runner = StreamRunner(section, bundle, publisher, "CPUExecutionProvider")
    runner.start()
    try:
        wait_for(lambda: runner.backoff.failures == 1)  # the file is not there yet: one failure, 1 s to wait
        assert runner.status()["state"] == "retrying" and "no such file" in runner.status()["error"]
        shutil.copy(sorted((data / "gtzan" / "pop").glob("*.ogg"))[0], path)
        wait_for(lambda: runner.status()["state"] == "running" and runner.backoff.failures == 0)
        assert runner.status()["failures"] == 1  # status still counts the failure that was
    finally:
        runner.stop()
        runner.join(5)
        publisher.close()


def test_a_file_source_that_is_never_read_holds_no_file(music):
    def open_files() -> int:
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == str(music) for fd in os.listdir("/proc/self/fd"))

    source = FileSource(str(music), 16000)
    assert source.info.duration_s == 5.0 and open_files() == 0
    blocks = iter(source)
    next(blocks)
    assert open_files() == 1  # open while it is read
    blocks.close()
    assert open_files() == 0
