"""Native-scale synthesis: manipulation families, region shapes, post-processing, procedural textures."""

import numpy as np
import pytest

from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.synth.families import FAMILIES, GROUPS, HELD_OUT, blend, sample_family, training_families
from fakelocator.training.synth.post import PostConfig, postprocess
from fakelocator.training.synth.shapes import SHAPES, make_mask, sample_shape
from helpers.signatures import period2_statistic
from fakelocator.training.synth.textures import procedural_texture


def photo(seed: int = 0, h: int = 90, w: int = 117) -> np.ndarray:
    """A camera-like uint8 RGB image: smooth colour structure, an edge and noise, no resampling trace."""
    import cv2

    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 4.0)
    x = (x - x.min()) / (x.max() - x.min())
    x[:, w // 2:] = 1.0 - x[:, w // 2:]  # a sharp edge: resampling and blurring must show
    x = 30 + 190 * x + rng.normal(0, 4, size=x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_is_deterministic_and_changes_the_image(name):
    fam = FAMILIES[name]
    real = photo()
    a = fam.make(real, np.random.default_rng([3, 1]))
    b = fam.make(real, np.random.default_rng([3, 1]))
    c = fam.make(real, np.random.default_rng([4, 1]))
    assert a.shape == real.shape and a.dtype == np.uint8
    assert np.array_equal(a, b), "same seed, same candidate"
    assert not np.array_equal(a, c), "another seed draws another manipulation"
    gt = partial_manipulation_map(real, a)
    assert gt.mean() * 255 > 0.5, f"{name} changed the image by only {gt.mean() * 255:.2f} grey levels"
    assert fam.group in GROUPS


@pytest.mark.parametrize("name", list(FAMILIES))
def test_blended_ground_truth_lives_inside_the_mask(name):
    real = photo(1, 80, 96)
    rng = np.random.default_rng([7, 2])
    mask = make_mask("ellipse", real.shape[:2], rng)
    cand = FAMILIES[name].make(real, rng)
    fake = blend(real, cand, mask)
    gt = partial_manipulation_map(real, fake)
    assert gt[mask == 0].max() == 0.0, "nothing changes outside the mask"
    assert gt[mask > 0.5].mean() > 0.5 / 255, "the manipulation shows inside the mask"
    diff = np.abs(fake.astype(np.float32) - real) @ np.float32([0.299, 0.587, 0.114]) / 255
    np.testing.assert_allclose(gt, diff, atol=1e-6)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_handles_the_smallest_and_odd_sizes(name):
    for h, w in ((16, 16), (17, 29)):
        real = photo(2, h, w)
        out = FAMILIES[name].make(real, np.random.default_rng([h, w]))
        assert out.shape == real.shape and out.dtype == np.uint8


def test_held_out_families_exist_and_are_of_different_groups():
    assert 2 <= len(HELD_OUT) <= 3
    assert len({FAMILIES[n].group for n in HELD_OUT}) == len(HELD_OUT)
    assert set(training_families()) == set(FAMILIES) - set(HELD_OUT)
    with pytest.raises(ValueError, match="unknown families"):
        training_families(("no_such_family",))


def test_sample_family_follows_the_weights():
    rng = np.random.default_rng(0)
    drawn = [sample_family(rng).name for _ in range(3000)]
    counts = {n: drawn.count(n) for n in FAMILIES}
    assert min(counts.values()) > 0
    repo = np.mean([counts[n] for n in FAMILIES if FAMILIES[n].group == "repo_decoder"])
    other = np.mean([counts[n] for n in FAMILIES if FAMILIES[n].group != "repo_decoder"])
    assert 0.35 < repo / other < 0.7, "repo decoders have half the weight"
    train = training_families()
    assert all(sample_family(rng, train).name not in HELD_OUT for _ in range(200))
    with pytest.raises(ValueError, match="no families"):
        sample_family(rng, {})


def test_family_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        FAMILIES["gan_tconv"].make(np.zeros((32, 32, 3), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="too small"):
        FAMILIES["gan_tconv"].make(np.zeros((8, 32, 3), np.uint8), np.random.default_rng(0))


@pytest.mark.parametrize("kind", list(SHAPES))
def test_shapes_are_soft_masks_of_sane_area(kind):
    areas = []
    for seed in range(6):
        m = make_mask(kind, (90, 120), np.random.default_rng(seed))
        assert m.shape == (90, 120) and m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() <= 1.0 and m.max() > 0.9
        areas.append(float(m.mean()))
    if kind == "whole":
        assert areas == [1.0] * 6
    else:
        assert 0.003 < np.mean(areas) < 0.7, f"{kind}: mean area {np.mean(areas):.3f}"
        assert np.array_equal(make_mask(kind, (90, 120), np.random.default_rng(1)),
                              make_mask(kind, (90, 120), np.random.default_rng(1)))


def test_face_parts_follow_a_given_face():
    face = (40, 30, 60, 70)
    m = make_mask("mouth", (160, 160), np.random.default_rng(0), faces=(face,))
    ys, xs = np.nonzero(m > 0.5)
    assert 40 <= xs.mean() <= 100 and 30 + 0.6 * 70 <= ys.mean() <= 30 + 70 * 1.0


def test_shape_errors_and_sampling():
    with pytest.raises(ValueError, match="unknown region shape"):
        make_mask("triangle", (64, 64), np.random.default_rng(0))
    drawn = {sample_shape(np.random.default_rng(s)) for s in range(200)}
    assert drawn == set(SHAPES)


def test_postprocess_keeps_image_and_ground_truth_aligned():
    real = photo(2, 120, 100)
    gt = np.zeros((120, 100), np.float32)
    gt[30:70, 20:60] = 1.0
    always = PostConfig(resize_probability=1.0, noise_probability=1.0, jpeg_probability=1.0)
    for seed in range(8):
        img, g = postprocess(real, gt, np.random.default_rng(seed), always)
        assert img.shape[:2] == g.shape and img.dtype == np.uint8 and g.dtype == np.float32
        h, w = g.shape
        assert 0.79 * 120 <= h <= 1.26 * 120 and abs(w / h - 100 / 120) < 0.03
        # the marked square is where it was, in relative coordinates
        ys, xs = np.nonzero(g > 0.5)
        assert abs(ys.mean() / h - 50 / 120) < 0.02 and abs(xs.mean() / w - 40 / 100) < 0.02
        img2, g2 = postprocess(real, gt, np.random.default_rng(seed), always)
        assert np.array_equal(img, img2) and np.array_equal(g, g2)
    never = PostConfig(resize_probability=0, noise_probability=0, jpeg_probability=0)
    img, g = postprocess(real, gt, np.random.default_rng(0), never)
    assert np.array_equal(img, real) and np.array_equal(g, gt)
    img, g = postprocess(real, None, np.random.default_rng(0), always)
    assert g is None
    with pytest.raises(ValueError, match="does not match"):
        postprocess(real, gt[:10], np.random.default_rng(0))


def test_procedural_textures_are_varied_deterministic_and_free_of_period2_trace():
    stats, means = [], []
    for seed in range(12):
        t = procedural_texture((128, 160), np.random.default_rng(seed))
        assert t.shape == (128, 160, 3) and t.dtype == np.uint8
        stats.append(period2_statistic(t))
        means.append(t.mean())
    assert np.array_equal(procedural_texture((64, 64), np.random.default_rng(5)),
                          procedural_texture((64, 64), np.random.default_rng(5)))
    assert np.std(means) > 5, "textures should differ from one seed to the next"
    # an upsampled copy of the same textures shows the trace these must not have
    import cv2

    up = [period2_statistic(cv2.resize(procedural_texture((64, 80), np.random.default_rng(s)), (160, 128),
                                       interpolation=cv2.INTER_LINEAR)) for s in range(12)]
    # a camera photo scores about 0.03 on this statistic, a ×2 enlargement 0.1 or more
    assert np.median(stats) < 0.06, stats
    assert np.median(up) > 10 * np.median(stats), (np.median(stats), np.median(up))


@pytest.mark.parametrize("kind", ["tconv2", "tconv3", "tconv4", "pixelshuffle", "nearest_conv", "bilinear_conv"])
def test_rgb_blocks_compute_the_torch_layer_they_stand_for(kind):
    """The full-resolution blocks run a ×2 layer as four 3×3 phase filters (OpenCV); away from the
    borders that is exactly the torch layer (transposed conv, pixel shuffle, upsample + conv)."""
    import torch

    from fakelocator.training.synth.gan import _PHASES, _rgb_up, _up_layer, phase_kernels

    rng = np.random.default_rng(0)
    up = _up_layer(kind, 1, 1, np.ones((1, 1)), 0.3, rng)
    impulse = torch.zeros(1, 1, 9, 9)
    impulse[0, 0, 4, 4] = 1.0
    with torch.no_grad():
        response = up(impulse)[0, 0].numpy()
    kernels = phase_kernels(up)
    assert np.isclose(np.abs(kernels).sum(), np.abs(response).sum(), rtol=1e-5), "the response fits 3×3 per phase"
    z = rng.normal(size=(20, 24, 3)).astype(np.float32)
    ours = _rgb_up(z, kernels, np.tile(np.eye(3, dtype=np.float32), (4, 1, 1)))
    with torch.no_grad():
        ref = up(torch.from_numpy(z.transpose(2, 0, 1).copy())[:, None])[:, 0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(ours[4:-4, 4:-4], ref[4:-4, 4:-4], atol=1e-5)
    assert len(_PHASES) == 4


@pytest.mark.parametrize("name", ["gan_tconv", "gan_pixelshuffle", "gan_resize_conv"])
def test_decoder_families_leave_a_periodic_trace_at_native_scale(name):
    """What the model must find: the fake's second-derivative statistics depend on pixel parity
    more than the real's, at the image's own pixels."""
    real = photo(5, 128, 128)
    base = period2_statistic(real)
    stats = [period2_statistic(FAMILIES[name].make(real, np.random.default_rng([s, 3]))) for s in range(8)]
    assert np.median(stats) > base + 0.02, (base, stats)


def test_fingerprint_puts_peaks_in_the_spectrum():
    """Periods 2, 4 and 8 put energy at multiples of 1/8 cycle per pixel (a 128-px image: bins k·16)."""
    real = photo(6, 128, 128)

    def peak_share(img):
        spec = np.abs(np.fft.fft2(img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])))
        spec[0, 0] = 0.0
        return spec[::16, ::16].sum() / spec.sum()

    base = peak_share(real)
    for s in range(4):
        fake = FAMILIES["fingerprint_periodic"].make(real, np.random.default_rng([s, 4]))
        assert peak_share(fake) > 1.5 * base, (s, base, peak_share(fake))


@pytest.mark.slow
def test_family_report_writes_a_sheet_and_times_every_item(tmp_path, capsys):
    import cv2

    from fakelocator.training.synth.family_report import TILE, main

    names = ["gan_tconv", "upscale_nearest", "selfblend_colour"]
    assert main(["--sheet", str(tmp_path / "sheet.png"), "--timing", "--size", "64", "--n", "1", "--families", *names]) == 0
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 2 * TILE and sheet.shape[1] >= 8 * TILE  # 2 rows of 2 panels
    out = capsys.readouterr().out
    for name in [*names, *SHAPES, "postprocess", "procedural_texture"]:
        assert f"| {name} |" in out
    assert "| repo_decoder |" not in out
    for bad in ([], ["--timing", "--families", "nope"]):
        with pytest.raises(SystemExit):
            main(bad)
