"""Prometheus metrics for the daemon, read from its status at scrape time (no double bookkeeping)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.registry import CollectorRegistry


class StatusCollector:
    """Prometheus collector that reads the daemon's status at scrape time: no second set of counters to drift."""

    def __init__(self, status: Callable[[], dict]):
        self._status = status

    def collect(self):
        st = self._status()
        yield InfoMetricFamily("rtgenre_model", "Model and execution provider",
                               value={"model": st["model"], "provider": st["provider"]})  # fmt: skip
        yield GaugeMetricFamily("rtgenre_uptime_seconds", "Seconds since the daemon started", value=st["uptime_s"])
        yield CounterMetricFamily("rtgenre_feed_sent", "Messages published", value=st["feed"]["sent"])
        yield GaugeMetricFamily("rtgenre_feed_subscribers", "Current subscribers", value=st["feed"]["subscribers"])
        per_stream = {
            "windows": CounterMetricFamily("rtgenre_windows", "Windows classified", labels=["stream"]),
            "audio_overruns": CounterMetricFamily("rtgenre_audio_overruns", "Audio samples lost", labels=["stream"]),
            "skipped_windows": CounterMetricFamily(
                "rtgenre_skipped_windows", "Windows of audio skipped because the daemon fell behind", labels=["stream"]
            ),
            "overflows": CounterMetricFamily(
                "rtgenre_capture_overflows", "PortAudio input overflows", labels=["stream"]
            ),
            "failures": CounterMetricFamily("rtgenre_stream_failures", "Source failures", labels=["stream"]),
        }
        up = GaugeMetricFamily("rtgenre_stream_up", "1 while the stream's source delivers", labels=["stream"])
        latency = HistogramMetricFamily("rtgenre_latency_seconds", "Hop-to-publish latency", labels=["stream"])
        for sid, s in st["streams"].items():
            for key, family in per_stream.items():
                family.add_metric([sid], s.get(key, 0))
            up.add_metric([sid], 1.0 if s["state"] in ("running", "capturing") else 0.0)
            if h := s.get("latency_histogram"):
                buckets = [(str(le), c) for le, c in zip(h["le"], h["counts"], strict=True)]
                latency.add_metric([sid], buckets, h["sum"])
        yield from per_stream.values()
        yield up
        yield latency


def serve_metrics(address: str, port: int, status: Callable[[], dict]) -> None:
    """Expose http://address:port/metrics from a background thread."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(status))
    start_http_server(port, addr=address, registry=registry)
