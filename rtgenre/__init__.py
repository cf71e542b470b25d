"""rtgenre: real-time music genre classification published over ZeroMQ.

The library API (``load_model``, ``Model.classify``, ``available_models``) lives in ``rtgenre.api``;
the command line is built on it.
"""

__version__ = "0.1.0"

from .api import Model, Result, available_models, load_model  # noqa: E402

__all__ = ["Model", "Result", "__version__", "available_models", "load_model"]
