"""The on-the-fly synthesis stream: endless, seeded, the same for any number of loader workers."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.training.stream import Recipe, StreamConfig, SynthStream, make_target
from fakelocator.training.train_config import TrainConfig

NATIVE = Preprocessing(64, 64, analysis="native", tile_overlap=8)
FAST = ("upscale_nearest", "selfblend_colour", "gan_tconv")


@pytest.fixture(scope="module")
def recipe():
    return Recipe(StreamConfig(crop=64, families=FAST))


def _batches(stream, workers):
    loader = DataLoader(stream, batch_size=4, num_workers=workers, shuffle=False)
    return [(b["image"].clone(), b["map"].clone(), b["label"].clone()) for b in loader]


def test_items_are_the_same_for_any_number_of_workers(recipe):
    stream = SynthStream(recipe.config, NATIVE, length=8, seed=3, recipe=recipe)
    alone, two = _batches(stream, 0), _batches(stream, 2)
    for (xa, ma, la), (xb, mb, lb) in zip(alone, two):
        assert torch.equal(xa, xb) and torch.equal(ma, mb) and torch.equal(la, lb)


def test_every_epoch_is_a_fresh_draw_and_a_seed_repeats_it(recipe):
    stream = SynthStream(recipe.config, NATIVE, length=4, seed=3, recipe=recipe)
    first = stream[0]["image"]
    stream.set_epoch(1)
    assert not torch.equal(first, stream[0]["image"])
    stream.set_epoch(0)
    assert torch.equal(first, stream[0]["image"])
    other = SynthStream(recipe.config, NATIVE, length=4, seed=4, recipe=recipe)
    assert not torch.equal(first, other[0]["image"])


def test_items_have_the_tile_shape_and_fakes_carry_their_ground_truth(recipe):
    stream = SynthStream(recipe.config, NATIVE, length=40, seed=0, recipe=recipe)
    items = [stream.item(i) for i in range(40)]
    assert all(it.image.shape == (64, 64, 3) and it.target.shape == (64, 64) for it in items)
    fakes = [it for it in items if it.label == 1]
    reals = [it for it in items if it.family == ""]
    assert fakes and reals
    for it in fakes:
        assert it.family in FAST
        assert it.shape == "whole" or it.target.max() > 0.5
    for it in items:
        if it.shape == "whole":
            assert it.target.min() == 1.0


def test_a_fixed_validation_draw_ignores_the_epoch(recipe):
    val = SynthStream(recipe.config, NATIVE, length=2, seed=1, recipe=recipe, fixed_epoch=0)
    a = val[1]["map"]
    val.set_epoch(5)
    assert torch.equal(a, val[1]["map"])


def test_target_scales_eq7_and_saturates():
    gt = np.zeros((32, 32), np.float32)
    gt[8:24, 8:24] = 0.02  # 5 grey levels
    t = make_target(gt, StreamConfig(gt_scale=0.04, gt_sigma=0))
    assert t[16, 16] == pytest.approx(0.5) and t[0, 0] == 0
    assert make_target(gt * 4, StreamConfig(gt_scale=0.04, gt_sigma=0)).max() == 1.0


def test_held_out_families_are_never_drawn_and_bad_configs_are_refused():
    r = Recipe(StreamConfig(exclude=("upscale_nearest",)))
    assert "upscale_nearest" not in r.families
    with pytest.raises(FakeLocatorError, match="unknown synthesis families"):
        Recipe(StreamConfig(families=("no_such_family",)))
    with pytest.raises(FakeLocatorError, match="crop"):
        StreamConfig(crop=100)
    with pytest.raises(FakeLocatorError, match="not both"):
        TrainConfig(data=("x",), stream=StreamConfig())
    cfg = TrainConfig.from_dict(TrainConfig(stream=StreamConfig(crop=64)).to_dict())
    assert cfg.stream == StreamConfig(crop=64)
