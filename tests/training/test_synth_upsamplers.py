"""Each upsampling family of Sec. III-B leaves its texture; a perfect decoder leaves none."""

import numpy as np
import pytest
import torch

from fakelocator.training.synth.config import FAMILIES
from fakelocator.training.synth.decoder import DecoderSpec, run_decoder
from helpers.signatures import period2_statistic
from fakelocator.training.synth.upsamplers import make_upsampler


def natural_image(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A photo-like (h, w, 3) float32 image in [0, 1]: smooth structure plus sensor-like noise, and
    no resampling anywhere, so it has no period-2 statistics of its own."""
    import cv2

    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    x = (x - x.min()) / (x.max() - x.min())
    return np.clip(0.15 + 0.7 * x + 0.02 * rng.normal(size=x.shape), 0, 1).astype(np.float32)


def _t(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))


def test_nearest_copies_each_latent_pixel_into_a_2x2_block():
    x = _t(natural_image(0, 16, 20))
    y = make_upsampler("nearest", 3, 0.1, np.random.default_rng(0))(x)
    assert y.shape == (1, 3, 32, 40)
    for dy in (0, 1):
        for dx in (0, 1):
            assert torch.equal(y[..., dy::2, dx::2], x)


def test_transposed_convolution_paints_a_period_2_checkerboard_on_a_flat_image():
    flat = torch.full((1, 3, 24, 24), 0.4)
    up = make_upsampler("transposed_conv", 3, 0.1, np.random.default_rng(1))
    y = up(flat)[0, :, 4:-4, 4:-4].mean(0).numpy().astype(np.float64)  # (40, 40) interior, away from the border
    power = np.abs(np.fft.fft2(y - y.mean())) ** 2
    n = y.shape[0] // 2
    period2 = power[0, n] + power[n, 0] + power[n, n]
    assert y.std() > 1e-3, "a perturbed kernel must not interpolate a flat image exactly"
    assert period2 / power.sum() > 0.99, "all of the texture is at the period-2 frequencies"


def test_an_unperturbed_transposed_convolution_interpolates_a_flat_image_exactly():
    flat = torch.full((1, 3, 24, 24), 0.4)
    y = make_upsampler("transposed_conv", 3, 0.0, np.random.default_rng(1))(flat)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 0.4))


def test_unpooling_without_a_convolution_leaves_three_of_four_pixels_zero():
    x = _t(natural_image(2, 16, 16)) + 0.1  # no zeros of its own
    for seed in range(8):
        up = make_upsampler("unpool", 3, 0.1, np.random.default_rng(seed), zero_fill_probability=1.0)
        assert up.name == "unpool_zero"
        y = up(x)
        blocks = y.reshape(1, 3, 16, 2, 16, 2)
        assert torch.equal((blocks != 0).sum(dim=(3, 5)), torch.ones(1, 3, 16, 16, dtype=torch.long))
        assert torch.equal(blocks.sum(dim=(3, 5)), x)


@pytest.mark.parametrize("family", ["bilinear", "bicubic", "nearest"])
def test_interpolation_makes_the_second_derivative_periodic(family):
    x = natural_image(3)
    assert period2_statistic(x) < 0.03
    up = make_upsampler(family, 3, 0.1, np.random.default_rng(3))
    y = up(_t(x))[0].numpy().transpose(1, 2, 0)
    assert period2_statistic(y) > 0.3


def test_bilinear_upsampling_makes_second_differences_come_in_equal_pairs():
    x = natural_image(4, 32, 32)
    up = make_upsampler("bilinear", 3, 0.1, np.random.default_rng(0))
    up.params["align_corners"] = False
    y = up(_t(x))[0, 0].numpy().astype(np.float64)
    d = y[:, 2:] - 2 * y[:, 1:-1] + y[:, :-2]  # d[:, k] is centred on column k + 1
    np.testing.assert_allclose(d[:, 1:-1:2], d[:, 2::2], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_perfect_decoder_reproduces_its_input(family):
    """With full skip retention, unperturbed kernels and no invented content, every family cancels
    out: whatever a fake differs by is made by the upsampling layers."""
    x = natural_image(5, 64, 64)
    spec = DecoderSpec(depth=2, encoder="avgpool", kind="single", families=(family, family),
                       retention=(1.0, 1.0), strength=0.0, noise=0.0)
    y, _ = run_decoder(x, spec, np.random.default_rng(0))
    np.testing.assert_allclose(y, x, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("encoder", ["avgpool", "maxpool", "strided_conv", "antialiased"])
def test_every_family_leaves_a_period_2_texture_through_the_decoder(family, encoder):
    x = natural_image(6)
    assert period2_statistic(x) < 0.03
    for seed in range(3):
        spec = DecoderSpec(depth=1, encoder=encoder, kind="single", families=(family,),
                           retention=(0.3,), strength=0.1, noise=0.01)
        y, label = run_decoder(x, spec, np.random.default_rng(seed))
        assert label.startswith(family)
        assert period2_statistic(y) > 0.1, (family, encoder, seed)


def test_conv_decoders_and_stacks_are_labelled_by_their_layers():
    x = natural_image(7, 64, 64)
    spec = DecoderSpec(2, "avgpool", "stack", ("nearest", "transposed_conv"), (0.2, 0.2), 0.05, 0.01)
    _, label = run_decoder(x, spec, np.random.default_rng(0))
    assert label.startswith("stack(nearest+transposed_conv")
    spec = DecoderSpec(2, "avgpool", "conv_decoder", ("bicubic", "bilinear"), (0.2, 0.2), 0.05, 0.01)
    y, label = run_decoder(x, spec, np.random.default_rng(0))
    assert label.startswith("conv_decoder(bicubic") and y.shape == x.shape
    assert period2_statistic(y) > 0.1


def test_the_decoder_refuses_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="divisible"):
        run_decoder(np.zeros((30, 32, 3), np.float32), DecoderSpec(2, "avgpool", "single", ("nearest",) * 2, (0, 0), 0, 0),
                    np.random.default_rng(0))
