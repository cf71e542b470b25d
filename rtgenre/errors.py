"""Errors the CLI turns into one line on stderr and a non-zero exit code."""


class RtgenreError(Exception):
    """A failure caused by the user's input or environment, not by a bug."""


class AudioError(RtgenreError):
    """An audio file or device cannot be read."""


class ModelError(RtgenreError):
    """A model bundle is missing, corrupt or inconsistent."""


class FeedError(RtgenreError):
    """A ZeroMQ endpoint cannot be bound or connected."""
