"""The live terminal view: the current genre and one confidence bar per genre, redrawn in place."""

from __future__ import annotations

import sys
from typing import TextIO

from .messages import Heartbeat, Window, parse

BAR = 28


class LiveView:
    """The terminal view of one stream: current genre and a bar per genre, redrawn in place."""

    def __init__(self, title: str, labels: tuple[str, ...], duration_s: float | None = None, out: TextIO = sys.stdout):
        self.title = title
        self.labels = labels
        self.duration_s = duration_s
        self.out = out
        self._drawn = 0

    def update(self, msg: dict) -> None:
        body = parse(msg)
        if isinstance(body, Window | Heartbeat):
            self._draw(self._lines(body))

    def _lines(self, msg: Window | Heartbeat) -> list[str]:
        t = msg.t1 if isinstance(msg, Window) else msg.t
        clock = f"{t:6.1f} s" + (f" / {self.duration_s:.1f} s" if self.duration_s else "")
        top = msg.smoothed_top
        now = f"{top:<10} {msg.smoothed_confidence:4.0%}" if top else "–"
        provider = msg.provider if isinstance(msg, Window) else msg.stats.provider
        level = f"level {msg.level_dbfs:.0f} dBFS" if isinstance(msg, Window) else ""
        lines = [
            f"rtgenre ▸ {self.title}   {clock}   {provider}",
            f"  now: {now}   state: {msg.state}   {level}".rstrip(),
        ]
        probs = msg.smoothed or {}
        for label in self.labels:
            p = probs.get(label, 0.0)
            filled = round(p * BAR)
            mark = "▶" if label == top else " "
            lines.append(f"{mark} {label:<10} {'█' * filled}{'░' * (BAR - filled)} {p:4.0%}")
        return lines

    def _draw(self, lines: list[str]) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")
        self.out.write("".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)
