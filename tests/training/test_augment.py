import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.training.augment import AugmentConfig, apply_chain, augment_sample, color_jitter

NOTHING = dict(p_hflip=0.0, p_color=0.0, p_lowres=0.0, p_blur=0.0, p_noise=0.0, p_jpeg=0.0)
PHOTOMETRIC_ONLY = dict(NOTHING, p_color=1.0, p_lowres=1.0, p_blur=1.0, p_noise=1.0, p_jpeg=1.0)


@pytest.fixture
def image(rng):
    return rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)


def test_a_flip_moves_the_ground_truth_and_attention_with_the_image(image, rng):
    gt = rng.random((24, 40), dtype=np.float32)
    attention = rng.random((24, 40), dtype=np.float32)
    config = AugmentConfig(p_real=1.0, p_fake=1.0, **dict(NOTHING, p_hflip=1.0))
    out, (gt2, att2), applied = augment_sample(image, [gt, attention], True, config, rng)
    assert applied == ["hflip"]
    np.testing.assert_array_equal(out, image[:, ::-1])
    np.testing.assert_array_equal(gt2, gt[:, ::-1])
    np.testing.assert_array_equal(att2, attention[:, ::-1])


def test_photometric_steps_change_a_fake_image_but_not_its_ground_truth(image, rng):
    gt = rng.random((24, 40), dtype=np.float32)
    config = AugmentConfig(p_real=0.0, p_fake=1.0, **PHOTOMETRIC_ONLY)
    out, (gt2,), applied = augment_sample(image, [gt], True, config, rng)
    assert [a.split("(")[0] for a in applied] == ["color", "lowres", "blur", "noise", "jpeg"], "fixed order, JPEG last"
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
    assert gt2 is gt


def test_partial_augmentation_touches_reals_with_p_real_and_fakes_with_p_fake(image):
    gt = np.zeros((24, 40), np.float32)

    def fraction_augmented(config, is_fake, n=400):
        changed = 0
        for seed in range(n):
            _, _, applied = augment_sample(image, [gt], is_fake, config, np.random.default_rng(seed))
            changed += bool(applied)
        return changed / n

    paper = AugmentConfig(**dict(NOTHING, p_hflip=1.0))  # defaults p_real=1, p_fake=0
    assert fraction_augmented(paper, is_fake=False) == 1.0
    assert fraction_augmented(paper, is_fake=True) == 0.0
    half = AugmentConfig(p_real=0.5, p_fake=0.25, **dict(NOTHING, p_hflip=1.0))
    assert fraction_augmented(half, is_fake=False) == pytest.approx(0.5, abs=0.07)
    assert fraction_augmented(half, is_fake=True) == pytest.approx(0.25, abs=0.07)


def test_the_same_generator_seed_gives_the_same_augmentation(image):
    config = AugmentConfig(**dict(PHOTOMETRIC_ONLY, p_hflip=0.5))
    runs = [apply_chain(image, [], config, np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][2] == runs[1][2]
    other = apply_chain(image, [], config, np.random.default_rng(8))
    assert other[2] != runs[0][2]


def test_strengths_are_drawn_inside_the_configured_ranges(image):
    ranges = dict(jpeg_quality=(70, 72), blur_kernel=(5, 7), lowres_ratio=(2.0, 2.0))
    config = AugmentConfig(**dict(PHOTOMETRIC_ONLY, p_color=0.0), **ranges)
    for seed in range(20):
        applied = apply_chain(image, [], config, np.random.default_rng(seed))[2]
        q = int(applied[-1][len("jpeg(q="):-1])
        k = int(applied[1][len("blur(k="):-1])
        assert 70 <= q <= 72 and k in (5, 7) and applied[0] == "lowres(r=2.00)"


def test_color_jitter_at_neutral_factors_is_the_identity_and_brightness_scales(image):
    np.testing.assert_array_equal(color_jitter(image), image)
    np.testing.assert_array_equal(color_jitter(image, brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0), image)
    grey = np.full((4, 4, 3), 100, np.uint8)
    assert (color_jitter(grey, brightness=1.2) == 120).all()
    assert (color_jitter(grey, saturation=0.5, contrast=0.7, hue=0.1) == 100).all(), "grey stays grey"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(p_real=1.5), "p_real"),
        (dict(p_jpeg=-0.1), "p_jpeg"),
        (dict(jpeg_quality=(90, 50)), "jpeg_quality"),
        (dict(jpeg_quality=(0, 50)), "jpeg_quality"),
        (dict(blur_kernel=(2, 5)), "odd"),
        (dict(lowres_ratio=(0.5, 2.0)), "lowres_ratio"),
        (dict(brightness=1.0), "brightness"),
    ],
)
def test_invalid_augmentation_settings_are_refused(kwargs, message):
    with pytest.raises(FakeLocatorError, match=message):
        AugmentConfig(**kwargs)


def test_the_config_round_trips_through_a_plain_dict():
    config = AugmentConfig(p_fake=0.3, jpeg_quality=(40, 60))
    assert AugmentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(FakeLocatorError, match="unknown fields"):
        AugmentConfig.from_dict({"p_rotate": 1.0})
