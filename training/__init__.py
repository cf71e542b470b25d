"""Training, evaluation and ONNX export of rtgenre models (needs torch and librosa)."""
