"""The musicnn port: its checkpoint read without TensorFlow, its outputs against the original graph's, and the
transfer model's level invariance."""

import numpy as np
import pytest
import torch
from helpers import ROOT

from rtgenre.frontend import MelFrontend
from training import finetune, musicnn, transfer
from training.filterbank import mel_filterbank

FIXTURE = ROOT / "tests" / "fixtures" / "musicnn_reference.npz"


@pytest.fixture(scope="module")
def port(wheel) -> musicnn.Musicnn:
    return musicnn.from_checkpoint(musicnn.read_wheel(wheel))


def test_the_checkpoint_is_read_without_tensorflow(wheel):
    v = musicnn.read_wheel(wheel)
    assert v["conv2d/kernel"].shape == (7, 38, 1, 204)  # the 0.4·96-band timbral filters
    assert v["dense_1/kernel"].shape == (200, 50) and v["dense_1/kernel"].dtype == np.float32
    assert np.isfinite(v["batch_normalization_10/moving_variance"]).all()


def test_the_port_matches_the_original_tensorflow_model(port):
    ref = np.load(FIXTURE)
    with torch.no_grad():
        x = torch.from_numpy(ref["mel"])
        probs = torch.sigmoid(port(x)).numpy()
        penultimate = port.embed(x).numpy()
    assert np.abs(probs - ref["probs"]).max() <= 1e-4
    assert np.abs(penultimate - ref["penultimate"]).max() <= 1e-3
    top = [musicnn.MSD_LABELS[i] for i in probs.argmax(1)]
    assert top[:2] == ["jazz", "jazz"] and top[2] in ("punk", "metal", "rock", "hard rock")


@pytest.mark.parametrize("net", ["MSD_vgg", "MTT_vgg"])
def test_the_vgg_port_matches_the_original_tensorflow_model(wheel, net):
    """musicnn's square-filter taggers, a second pretrained view (training/vgg.py), on the same real patches."""
    from training import vgg

    ref = np.load(FIXTURE)
    with torch.no_grad():
        logits, feature = vgg.from_checkpoint(musicnn.read_wheel(wheel, net))(torch.from_numpy(ref["mel"]))
    assert feature.shape == (3, 512)
    assert np.abs(torch.sigmoid(logits).numpy() - ref[f"{net}_probs"]).max() <= 1e-4


def test_the_front_end_gives_the_fixture_its_input(data):
    """The reference patches came from rtgenre's own front end at musicnn's settings: it still gives them."""
    from helpers import DATA

    from rtgenre.audio import FileSource

    ref = np.load(FIXTURE)
    frontend = MelFrontend(musicnn.PARAMS, mel_filterbank(musicnn.PARAMS))
    for patch, name in zip(ref["mel"], ref["files"], strict=True):
        file, start = str(name).split("@")
        y = np.concatenate(list(FileSource(str(DATA / file), musicnn.PARAMS.sample_rate, block_seconds=30.0)))
        first = round(float(start.rstrip("s")) * musicnn.PARAMS.frame_rate)
        np.testing.assert_allclose(frontend.mel(y)[first : first + len(patch)], patch, atol=1e-4)


def test_level_normalisation_makes_the_verdict_level_free(port):
    model = transfer.TransferModel(port, transfer.LevelNorm(1e-3), "pooled", 10).eval()
    torch.nn.init.normal_(model.head.weight, std=0.05)
    x = torch.from_numpy(np.random.default_rng(0).normal(-40, 15, (2, 187, 96)).astype(np.float32))
    with torch.no_grad():
        loud, quiet = torch.softmax(model(x), 1), torch.softmax(model(x - 30.0), 1)
    assert (loud - quiet).abs().max() < 1e-4


@pytest.mark.parametrize("part", finetune.PARTS)
def test_a_finetuned_tail_is_what_the_exported_graph_computes(port, part):
    """Fine-tuning learns from cached features (front-end maps in float16); the bundle's graph starts at
    dB log-mel: installed into it, the tuned layers give the same probabilities."""
    ref = np.load(FIXTURE)
    db = 10 * np.log10((10.0 ** ref["mel"] - 1) / 10000 + 1e-10)  # musicnn's compression undone
    x = torch.from_numpy(db.astype(np.float32))
    model = transfer.TransferModel(port, transfer.LevelNorm(1e-3), "pooled", 10).eval()
    with torch.no_grad():
        feats = (model.front(x).half() if part == "midend" else model.embed(x)).numpy()
    cfg = finetune.FinetuneConfig(part=part, epochs=2, patches_per_epoch=64, batch=32)
    tail = finetune.fit(model.backbone, [feats], [5], cfg)
    assert not torch.equal(tail.backbone.dense.weight, port.dense.weight)  # the pretrained layers moved
    with torch.no_grad():
        graph = torch.softmax(finetune.installed(model, tail)(x), 1).numpy()
    tolerance = 1e-3 if part == "midend" else 1e-5  # the cached front-end maps are float16
    np.testing.assert_allclose(finetune.probs(tail, feats), graph, atol=tolerance)


@pytest.mark.parametrize("frames", [1, 15, 16, 31, 250])
def test_the_front_end_blocks_cheaper_order_gives_the_plain_one(port, frames):
    """Max over frequency before ReLU and batch norm (negated filters where the scale is negative), and time-only
    filters as banded products: the maps of TF's order (convolution, ReLU, batch norm, max), whatever the length."""
    x = torch.from_numpy(np.random.default_rng(frames).normal(0, 1, (2, 1, frames + 127, 96)).astype(np.float32))
    with torch.no_grad():
        for block in port.frontend:
            assert (block.bn.weight < 0).any() and (block.bn.weight > 0).any()  # both signs are exercised
            time = block.conv.kernel_size[0]
            plain = block.bn(torch.relu(block.conv(x[:, :, : frames + time - 1]))).amax(dim=3)
            got = block.maps(x[:, :, : frames + time - 1])
            assert got.shape == plain.shape == (2, block.channels, frames)
            assert (got - plain).abs().max() <= 1e-5 * plain.abs().max()


@pytest.mark.parametrize("bands", [38, 67, 96])
def test_a_wide_filter_in_the_dft_basis_is_the_direct_convolution(bands):
    """``spectral_filter``: musicnn's timbral filters computed per DFT bin give the direct convolution's maxima."""
    g = torch.Generator().manual_seed(bands)
    x, weight, bias = torch.rand(2, 1, 40, 96, generator=g), torch.randn(5, 7, bands, generator=g), torch.randn(5)
    want = torch.nn.functional.conv2d(x, weight[:, None], bias).amax(dim=3)
    got = musicnn.spectral_filter(x, weight, bias)
    assert got.shape == want.shape == (2, 5, 34)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * want.abs().max().item())
