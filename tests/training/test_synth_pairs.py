"""One (real, fake) pair: views, regions, edits, the blend repair and the scale design point."""

import math

import numpy as np
import pytest

from fakelocator.contract import resize_bilinear
from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.synth import SynthConfig, synthesize_one
from fakelocator.training.synth.config import EDITS, FAMILIES, REGIONS
from fakelocator.training.synth.edits import LUMA, apply_edit
from fakelocator.training.synth.regions import make_region
from helpers.signatures import period2_statistic
from fakelocator.training.synth.synthesize import resynthesize
from fakelocator.training.synth.views import make_view


def photo(seed: int = 0, h: int = 480, w: int = 640) -> np.ndarray:
    """A camera-like uint8 RGB photo: smooth colour structure and noise, no resampling texture."""
    import cv2

    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 6.0)
    x = (x - x.min()) / (x.max() - x.min())
    x = 30 + 190 * x + rng.normal(0, 4, size=x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def test_views_respect_the_size_aspect_and_source_rules():
    cfg = SynthConfig(size_range=(240, 400), aspect_range=(0.8, 1.25), max_upscale=1.5, min_source_side=224)
    img = photo()
    for seed in range(40):
        view = make_view(img, (), np.random.default_rng(seed), cfg)
        h, w = view.image.shape[:2]
        assert 240 <= h <= 400 and 240 <= w <= 400
        assert 0.8 - 0.02 <= w / h <= 1.25 + 0.02
        x, y, cw, ch = view.crop
        assert min(cw, ch) >= 224, "the model must see the photo downscaled, not our enlargement"
        assert max(h / ch, w / cw) <= 1.5 + 0.01
        assert 0 <= x and x + cw <= img.shape[1] and 0 <= y and y + ch <= img.shape[0]


@pytest.mark.parametrize("kind", REGIONS)
def test_regions_are_soft_masks_of_a_plausible_size(kind):
    cfg = SynthConfig()
    for seed in range(4):
        region = make_region(kind, (300, 400), np.random.default_rng(seed), cfg)
        m = region.mask
        assert m.dtype == np.float32 and m.shape == (300, 400)
        assert m.min() == 0.0 and m.max() <= 1.0
        assert 0.003 < region.area_fraction < 0.8
        assert ((m > 0.05) & (m < 0.95)).any(), "edges are feathered"
        x0, y0, x1, y1 = region.box
        assert not m[:y0].any() and not m[y1:].any() and not m[:, :x0].any() and not m[:, x1:].any()


def test_face_parts_are_laid_out_on_a_known_face():
    cfg = SynthConfig(region_area=(0.005, 0.6))
    face = (100.0, 80.0, 200.0, 200.0)  # x, y, w, h
    rows = {}
    for kind in ("eyes", "nose", "mouth", "face", "hair"):
        region = make_region(kind, (400, 400), np.random.default_rng(1), cfg, faces=(face,))
        assert region.face_source == "detected" and region.face_box == face
        ys, xs = np.nonzero(region.mask > 0.5)
        rows[kind] = ys.mean()
        assert 100 < xs.mean() < 300
    assert rows["hair"] < rows["eyes"] < rows["nose"] < rows["mouth"]


@pytest.mark.parametrize("kind", EDITS)
def test_edits_hit_the_requested_ground_truth_strength(kind):
    x = photo(1, 32, 40).astype(np.float32) / 255
    weights = np.ones(x.shape[:2], np.float32)
    y, desc = apply_edit(x, weights, kind, 0.05, np.random.default_rng(0))
    reached = float((np.abs(y - x) @ LUMA).mean())
    assert reached == pytest.approx(0.05, abs=0.003), desc
    assert desc.split(":")[0] == kind


def test_a_colour_edit_of_a_gray_image_falls_back_to_one_that_shows():
    gray = np.repeat(photo(2, 32, 40)[:, :, :1], 3, axis=2).astype(np.float32) / 255
    y, desc = apply_edit(gray, np.ones(gray.shape[:2], np.float32), "hue", 0.06, np.random.default_rng(0))
    assert desc.split(":")[0] in ("tint", "brightness")
    assert float((np.abs(y - gray) @ LUMA).mean()) > 0.03


def test_the_blend_repair_leaves_everything_outside_the_region_real():
    cfg = SynthConfig()
    real = photo(3)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        region = make_region("ellipse", real.shape[:2], rng, cfg)
        x0, y0, x1, y1 = region.box
        box = (max(0, x0 - 20), max(0, y0 - 20), min(real.shape[1], x1 + 20), min(real.shape[0], y1 + 20))
        fake, info = resynthesize(real, region.mask, box, rng, cfg, entire=False)
        gt = partial_manipulation_map(real, fake)
        assert not gt[region.mask == 0].any(), "pixels outside the region are exactly the real ones"
        assert gt[region.mask > 0.9].mean() > 0.01, info


def test_partial_fakes_reach_the_minimum_difference_and_stay_inside_their_box():
    cfg = SynthConfig(min_difference=0.02)
    for seed in range(6):
        s = synthesize_one(photo(seed), np.random.default_rng([9, seed]), cfg, kind="partial")
        assert s.kind == "partial" and s.property in REGIONS
        assert s.real.shape == s.fake.shape and s.real.dtype == s.fake.dtype == np.uint8
        gt = partial_manipulation_map(s.real, s.fake)
        x, y, w, h = (int(v) for v in s.info["box"].split(","))
        outside = gt.copy()
        outside[y:y + h, x:x + w] = 0
        assert not outside.any()
        assert s.info["region_difference"] >= 0.02


def test_entire_syntheses_change_every_part_of_the_image():
    s = synthesize_one(photo(4), np.random.default_rng(0), SynthConfig(), kind="entire")
    assert (s.kind, s.property) == ("entire", "entire")
    diff = np.abs(s.real.astype(int) - s.fake.astype(int)).sum(axis=2)
    h, w = diff.shape
    for quadrant in (diff[: h // 2, : w // 2], diff[: h // 2, w // 2:], diff[h // 2:, : w // 2], diff[h // 2:, w // 2:]):
        assert (quadrant > 0).mean() > 0.5


def test_real_items_have_no_fake():
    s = synthesize_one(photo(5), np.random.default_rng(0), SynthConfig(), kind="real")
    assert s.fake is None and (s.kind, s.property) == ("real", "")


def test_the_decoder_works_at_the_model_input_scale_whatever_the_image_size():
    """An artifact at a 1000-px image's pixel scale vanishes in the 224² model input, so the decoder
    resolution follows the model's: at gan_scale 1 a whole-image decoder works at 224 px."""
    real = photo(6, 1000, 1000)
    for model_input, scale, expected in ((224, 1.0, 224), (224, 0.5, 112), (320, 1.0, 320)):
        cfg = SynthConfig(gan_scale=(scale, scale), model_input=model_input)
        _, info = resynthesize(real, None, (0, 0, 1000, 1000), np.random.default_rng(0), cfg, entire=True)
        w, h = (int(v) for v in info["gan_size"].split("x"))
        assert abs(w - expected) <= 8 and abs(h - expected) <= 8, info["gan_size"]
    small = photo(7, 224, 224)
    cfg = SynthConfig(gan_scale=(1.4, 1.4))
    _, info = resynthesize(small, None, (0, 0, 224, 224), np.random.default_rng(0), cfg, entire=True)
    assert info["gan_size"] == "224x224", "never finer than the image itself"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_texture_survives_the_model_input_resize(family):
    """The design point: a decoder working at the model's scale leaves period-2 statistics in the
    224² model input of a 1000-px fake; the same decoder working at the image's own pixel scale
    leaves (almost) nothing there — the model could not see it."""
    real = photo(6, 1000, 1000)
    seen = lambda image: resize_bilinear(image, 224, 224)  # noqa: E731  the model's view
    assert period2_statistic(seen(real)) < 0.03
    common = dict(gan_scale=(1.0, 1.0), family_weights={family: 1.0}, decoder_weights={"single": 1.0},
                  depth_weights={"1": 1.0}, entire_detail_restore=(0.0, 0.0))
    at_model_scale, at_pixel_scale = [], []
    for seed in range(3):
        for model_input, out in ((224, at_model_scale), (1000, at_pixel_scale)):
            cfg = SynthConfig(model_input=model_input, **common)
            fake, _ = resynthesize(real, None, (0, 0, 1000, 1000), np.random.default_rng(seed), cfg, entire=True)
            out.append(period2_statistic(seen(fake)))
    assert min(at_model_scale) > 0.1
    assert max(at_pixel_scale) < 0.04


def test_synthesize_one_depends_on_its_generator_only():
    img = photo(8)
    a = synthesize_one(img, np.random.default_rng([1, 2]), SynthConfig(), kind="partial")
    b = synthesize_one(img, np.random.default_rng([1, 2]), SynthConfig(), kind="partial")
    c = synthesize_one(img, np.random.default_rng([1, 3]), SynthConfig(), kind="partial")
    assert np.array_equal(a.real, b.real) and np.array_equal(a.fake, b.fake) and a.info == b.info
    assert a.real.shape != c.real.shape or not np.array_equal(a.fake, c.fake)


def test_synthesize_one_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match="uint8"):
        synthesize_one(np.zeros((300, 300), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="kind"):
        synthesize_one(photo(), np.random.default_rng(0), kind="swap")


def test_gan_scale_is_recorded_and_within_range():
    cfg = SynthConfig(gan_scale=(0.6, 0.9))
    for seed in range(5):
        s = synthesize_one(photo(seed), np.random.default_rng(seed), cfg, kind="partial")
        assert 0.6 <= s.info["gan_scale"] <= 0.9
        assert math.isfinite(s.info["detail_restore"])
