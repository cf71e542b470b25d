import json
import shutil

import numpy as np
import pytest
from helpers import rtgenre_here
from test_cli import assert_one_line_error

from rtgenre.errors import ModelError
from rtgenre.model import DEFAULT_MODEL, Classifier, load_bundle, sha256_of


@pytest.fixture
def copy(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL, dst)
    return dst


def test_shipped_bundle_is_consistent(bundle):
    m = bundle.meta
    assert len(m.labels) == 10 and 1.0 <= m.window_s <= 3.0
    assert m.files["model.onnx"] == sha256_of(bundle.onnx_path)
    assert "validation" in m.extra and "training" in m.extra


def test_classifier_returns_a_distribution_per_window(bundle, classifier):
    p = bundle.meta.frontend
    x = np.random.default_rng(0).normal(-30, 15, (5, p.frames(bundle.meta.window_s), p.n_mels)).astype(np.float32)
    probs = classifier.predict(x)
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert classifier.provider == "CPUExecutionProvider"


def test_missing_bundle(tmp_path):
    with pytest.raises(ModelError, match="no such directory"):
        load_bundle(tmp_path / "nope")


def test_missing_meta(copy):
    (copy / "meta.json").unlink()
    with pytest.raises(ModelError, match="meta.json is missing"):
        load_bundle(copy)


def test_corrupt_meta(copy):
    (copy / "meta.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_bundle(copy)


def test_meta_missing_a_key(copy):
    meta = json.loads((copy / "meta.json").read_text())
    del meta["labels"]
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="invalid"):
        load_bundle(copy)


def test_sha_mismatch(copy):
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_bundle(copy)


def test_corrupt_onnx_with_matching_sha(copy):
    (copy / "model.onnx").write_bytes(b"this is not a graph")
    meta = json.loads((copy / "meta.json").read_text())
    meta["files"]["model.onnx"] = sha256_of(copy / "model.onnx")
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cannot be loaded"):
        Classifier(load_bundle(copy))


def test_labels_that_do_not_match_the_graph(copy):
    meta = json.loads((copy / "meta.json").read_text())
    meta["labels"] = meta["labels"][:9]
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not match 9 labels"):
        Classifier(load_bundle(copy))


def test_require_gpu_without_cuda_is_an_error(bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:
            Classifier(bundle, "cuda")
        except ModelError as e:
            assert "CUDA was required" in str(e)
            return
        pytest.skip("a working CUDA provider is present: nothing to refuse")
    with pytest.raises(ModelError, match="CUDA was required"):
        Classifier(bundle, "cuda")


@pytest.mark.parametrize("meta", ["[]", "null", '"a string"', "3"])
def test_meta_json_that_is_not_an_object(tmp_path, meta):
    copy = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL, copy)
    (copy / "meta.json").write_text(meta)
    assert_one_line_error(rtgenre_here("classify", "--model", str(copy), "x.ogg"), "meta.json must be a JSON object")


def test_filterbank_that_is_not_numpy_with_a_matching_sha(tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL, copy)
    (copy / "filterbank.npy").write_bytes(b"not numpy at all")
    meta = json.loads((copy / "meta.json").read_text())
    meta["files"]["filterbank.npy"] = __import__("hashlib").sha256(b"not numpy at all").hexdigest()
    (copy / "meta.json").write_text(json.dumps(meta))
    assert_one_line_error(rtgenre_here("classify", "--model", str(copy), "x.ogg"), "not a numpy array file")
