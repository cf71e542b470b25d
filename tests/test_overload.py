"""A daemon given twice the streams one core carries: it stays responsive, keeps latency bounded by skipping
audio it cannot get to, and counts what it skipped (status, end-of-stream stats) and logs it once per burst."""

import time

import numpy as np
import pytest
from served import Served

pytestmark = pytest.mark.slow

STREAMS = 500  # about twice what one core sustains with the default model (bench/streams.py)


def test_an_overloaded_daemon_answers_bounds_latency_and_counts_its_skips(tmp_path, data):
    files = sorted((data / "gtzan").glob("*/*.00002.ogg"))
    streams = [{"id": f"s{i}", "source": "file", "path": str(files[i % len(files)]), "loop": True}
               for i in range(STREAMS)]  # fmt: skip
    served = Served(tmp_path, streams, cpus={0}, env={"OMP_NUM_THREADS": "1"})
    try:
        served.wait_log("skipping audio older than", timeout=60)
        answers, start, first = [], time.monotonic(), len(served.messages)
        while time.monotonic() - start < 10:
            t0 = time.monotonic()
            status = served.status()
            answers.append(time.monotonic() - t0)
            time.sleep(0.5)
        recent = [m for _, m in served.messages[first:] if m["type"] == "window"]  # those of these 10 s
    finally:
        served.stop()
    assert max(answers) < 2.0, f"status took up to {max(answers):.2f} s"
    skipped = [s["skipped_windows"] for s in status["streams"].values()]
    assert sum(skipped) > 0 and status["streams"]["s0"]["state"] == "running"
    latency = np.array([m["wall"] - m["captured"] for m in recent])
    assert len(latency) > 20 and np.median(latency) < 6.0, f"latency p50 {np.median(latency):.1f} s"
    eos = [m for _, m in served.messages if m["type"] == "eos"]
    assert len(eos) == STREAMS and sum(m["stats"]["skipped_windows"] for m in eos) >= sum(skipped)
    bursts = [line for line in served.log if "skipping audio older than" in line]
    assert len(bursts) == 1  # one burst, one line: not one per stream or per skip
