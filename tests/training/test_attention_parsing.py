"""facexlib's real parsing networks (random weights: nothing can be downloaded here) through the
attention provider, its cache and the trainer; and proof that nothing is ever downloaded."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from fakelocator.errors import FakeLocatorError
from fakelocator.training.attention.labels import LABEL, LABELS
from fakelocator.training.attention.parsing import FaceParser, build_network
from fakelocator.training.attention.provider import AttentionConfig, FaceAttention
from fakelocator.contract import Preprocessing
from fakelocator.training.config import ModelConfig
from fakelocator.training.trainer import TrainConfig, build_data, train

from fakelocator.training.samples import load_samples, read_image


def write_dataset(root, rows, size=(48, 40)):
    """Noise images and a manifest; ``rows`` are (image, real, kind, property)."""
    import cv2

    rng = np.random.default_rng(0)
    lines = ["image,real,kind,property"]
    for image, real, kind, prop in rows:
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / image), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        lines.append(f"{image},{real},{kind},{prop}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return load_samples(root)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Every way facexlib or torch could fetch weights fails the test."""
    import facexlib.detection
    import facexlib.parsing
    import facexlib.utils
    import facexlib.utils.misc
    import torch.hub

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:1]}")

    for module in (facexlib.utils, facexlib.utils.misc, facexlib.parsing, facexlib.detection):
        monkeypatch.setattr(module, "load_file_from_url", refuse)
    monkeypatch.setattr(facexlib.utils.misc, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def counting(network):
    calls = []
    network.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    return calls


@pytest.mark.parametrize("model, size", [("bisenet", 128), ("parsenet", 64)])
def test_random_facexlib_networks_parse_into_canonical_labels_through_the_cache(tmp_path, model, size):
    torch.manual_seed(0)
    network = build_network(model, size=size)
    calls = counting(network)
    parser = FaceParser(model, network, identity=f"{model}:random", size=size, batch_size=2)
    samples = write_dataset(tmp_path / "d", [("real/a.png", "", "real", ""), ("fake/a.png", "real/a.png", "partial", "Male"),
                                             ("fake/b.png", "real/a.png", "partial", "Smile")], size=(50, 70))
    attention = FaceAttention(samples, parser=parser)
    stats = attention.prepare()
    assert (stats.images, stats.parsed) == (3, 3) and sum(calls) == 3 and len(calls) == 2, "two batches of at most 2"
    for s in samples:
        labels = attention.labels(s)
        assert labels.shape == (size, size) and labels.dtype == np.uint8 and labels.max() < len(LABELS)
        a = attention(s, np.zeros((50, 70, 3), np.uint8))
        assert a.shape == (50, 70) and a.dtype == np.float32 and 0.25 <= a.min() and a.max() == 1
    assert len(list((tmp_path / "d" / ".attention" / model).rglob("*.png"))) == 3
    assert sum(calls) == 3, "the maps came from the cache"


class PlantedLogits(torch.nn.Module):
    """Logits that pick ParseNet's label 13 (hair) in the top half and 10 (mouth) in the bottom half."""

    def forward(self, x):
        n, _, h, w = x.shape
        logits = torch.zeros(n, 19, h, w)
        logits[:, 13, : h // 2] = 1
        logits[:, 10, h // 2:] = 1
        return logits, x  # ParseNet returns (mask logits, image)


def test_parsenet_labels_are_renumbered_before_regions_are_chosen(tmp_path):
    parser = FaceParser("parsenet", PlantedLogits(), identity="planted", size=32)
    labels = parser.parse([np.zeros((10, 10, 3), np.uint8)])[0]
    assert (labels[:16] == LABEL["hair"]).all() and (labels[16:] == LABEL["mouth"]).all()
    samples = write_dataset(tmp_path / "d", [("real/a.png", "", "real", ""), ("fake/a.png", "real/a.png", "partial", "Black hair")])
    a = FaceAttention(samples, parser=parser)(samples[1], np.zeros((48, 40, 3), np.uint8))
    assert (a[:23] == 1).all() and (a[-5:] < 1).all(), "hair on top"


def test_weights_of_another_network_are_refused_clearly(tmp_path):
    path = tmp_path / "parsing_parsenet.pth"
    torch.save(build_network("parsenet", size=64).state_dict(), path)
    with pytest.raises(FakeLocatorError, match="do not fit facexlib's bisenet.*parsing_bisenet.pth"):
        FaceParser.from_weights("bisenet", path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FakeLocatorError, match="junk.pth: cannot be read"):
        FaceParser.from_weights("bisenet", tmp_path / "junk.pth")


def test_training_parses_with_a_local_weights_file_and_feeds_the_maps_to_the_model(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "parsing_bisenet.pth"
    state = build_network("bisenet").state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, weights)  # a DataParallel-style checkpoint
    monkeypatch.setenv("FAKELOCATOR_PARSING_WEIGHTS", str(weights))
    root = tmp_path / "d"
    write_dataset(root, [("real/a.png", "", "real", ""), ("fake/a.png", "real/a.png", "partial", "Smile"),
                         ("real/b.png", "", "real", ""), ("fake/b.png", "real/b.png", "partial", "Bangs")], size=(32, 32))
    config = TrainConfig(
        data=[str(root)], val_fraction=0, out=str(tmp_path / "run"), model=ModelConfig(unet_width=4, preprocessing=Preprocessing(32, 32)),
        epochs=1, batch_size=2, max_steps_per_epoch=1, workers=0, threads=1, attention=AttentionConfig(mode="on"),
    )
    data = build_data(config)
    provider = data.train.attention_provider
    assert isinstance(provider, FaceAttention) and provider.identity.startswith("bisenet:")
    assert len(list((root / ".attention" / "bisenet").rglob("*.png"))) == 4
    for i, s in enumerate(data.train.samples):
        expected = provider(s, read_image(s.image))
        np.testing.assert_allclose(data.train[i]["attention"][0].numpy(), expected, atol=1e-6)

    seen = []
    original = torch.nn.Module.__call__

    def spy(module, *args, **kwargs):
        if "attention" in kwargs and kwargs["attention"] is not None:
            seen.append(kwargs["attention"].shape)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__call__", spy)
    result = train(config, progress=False)
    assert seen == [(2, 1, 32, 32)], "the training step passed the attention maps"
    assert result.weights.is_file()
    from fakelocator.training.checkpoint import load_model

    _, provenance = load_model(result.weights)
    assert provenance["attention"] == {"parser": "bisenet", "identity": provider.identity, "spread": 0.05, "floor": 0.25}
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "attention:" in saved and "mode: 'on'" in saved


@pytest.mark.needs_cuda
def test_parsing_on_cuda_gives_the_cpus_labels():
    torch.manual_seed(0)
    network = build_network("bisenet")
    images = [np.random.default_rng(i).integers(0, 256, (90, 70, 3), dtype=np.uint8) for i in range(3)]
    cpu = FaceParser("bisenet", network, identity="random", size=128).parse(images)
    cuda = FaceParser("bisenet", network, identity="random", device="cuda", size=128).parse(images)
    for a, b in zip(cpu, cuda):
        assert (a == b).mean() > 0.99, "argmax ties may flip a few pixels, no more"
