"""rtgenre: real-time music genre classification published over ZeroMQ."""

__version__ = "0.1.0"
