"""Training, evaluation and ONNX export of rtgenre models (needs torch and librosa)."""


def main() -> None:
    """`rtgenre-train` and `python -m training`: the runtime installs without torch, so a missing training
    extra is one line saying how to get it rather than an import traceback."""
    try:
        from .cli import main as cli
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in (__name__, "rtgenre"):
            raise  # our own module missing is a broken install or a bug, not a missing extra
        raise SystemExit(f"rtgenre-train: the Python package {e.name!r} is missing; install the training extra: "
                         "pip install 'rtgenre[train]'") from None  # fmt: skip
    cli()
