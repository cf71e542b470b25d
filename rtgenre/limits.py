"""The bounds a setting's dataclass field carries for the config loader (``config.py``) and the command line."""

from __future__ import annotations


def limits(lo: float | None = None, hi: float | None = None, choices: tuple = ()) -> dict:
    """Field metadata: the lowest and highest value a setting takes, or the values it may be one of."""
    return {"lo": lo, "hi": hi, "choices": choices}
