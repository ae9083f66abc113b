import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.samples import (
    InvalidSamplesError,
    Sample,
    collect_samples,
    count_kinds,
    ground_truth,
    load_folder,
    load_samples,
    read_image,
    split_samples,
)


def put(path: Path, h=8, w=8, value=0, channels=3, dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (h, w) if channels == 1 else (h, w, channels)
    assert cv2.imwrite(str(path), np.full(shape, value, dtype))
    return path


def by_name(samples):
    return {s.image.relative_to(s.root).as_posix(): s for s in samples}


def test_paired_folders_match_by_relative_path_without_extension(tmp_path):
    put(tmp_path / "real/a.png")
    put(tmp_path / "fake/a.jpg")  # the extension may differ
    put(tmp_path / "real/sub/b.png")
    put(tmp_path / "fake/sub/b.png")
    put(tmp_path / "real/c.png")  # a real image without a fake is a real sample
    put(tmp_path / "entire/e.webp")
    (tmp_path / "fake/notes.txt").write_text("not an image")

    samples = by_name(load_samples(tmp_path))
    assert set(samples) == {"real/a.png", "fake/a.jpg", "real/sub/b.png", "fake/sub/b.png", "real/c.png", "entire/e.webp"}
    assert samples["fake/a.jpg"].kind == "partial" and samples["fake/a.jpg"].real == tmp_path / "real/a.png"
    assert samples["fake/sub/b.png"].real == tmp_path / "real/sub/b.png"
    assert samples["real/c.png"].kind == "real" and samples["real/c.png"].label == 0
    assert samples["entire/e.webp"].kind == "entire" and samples["entire/e.webp"].label == 1
    assert count_kinds(samples.values()) == {"real": 3, "partial": 2, "entire": 1}


def test_a_fake_without_its_real_image_is_reported_by_path(tmp_path):
    put(tmp_path / "real/a.png")
    put(tmp_path / "fake/a.png")
    orphan = put(tmp_path / "fake/x/orphan.png")
    with pytest.raises(InvalidSamplesError, match="--skip-invalid") as e:
        load_samples(tmp_path)
    assert len(e.value.problems) == 1 and str(orphan) in e.value.problems[0] and "real/x/orphan" in str(e.value)


def test_pairs_of_different_sizes_are_reported_naming_both_images(tmp_path):
    real = put(tmp_path / "real/a.png", 8, 8)
    fake = put(tmp_path / "fake/a.png", 8, 9)
    with pytest.raises(InvalidSamplesError) as e:
        load_samples(tmp_path)
    assert str(fake) in str(e.value) and str(real) in str(e.value) and "9x8" in str(e.value)


def test_skip_invalid_leaves_out_each_bad_sample_with_a_warning_naming_it(tmp_path, caplog):
    put(tmp_path / "real/a.png")
    put(tmp_path / "fake/a.png")
    orphan = put(tmp_path / "fake/orphan.png")
    put(tmp_path / "real/big.png", 8, 8)
    mismatch = put(tmp_path / "fake/big.png", 16, 8)
    with caplog.at_level(logging.WARNING):
        samples = load_samples(tmp_path, skip_invalid=True)
    assert {s.image for s in samples} == {tmp_path / "real/a.png", tmp_path / "fake/a.png", tmp_path / "real/big.png"}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(orphan) in w for w in warned) and any(str(mismatch) in w for w in warned)


def test_two_files_differing_only_in_extension_are_ambiguous(tmp_path):
    put(tmp_path / "real/a.png")
    put(tmp_path / "real/a.jpg")
    with pytest.raises(InvalidSamplesError, match="apart from the extension"):
        load_samples(tmp_path)


def test_an_unreadable_image_is_reported_before_training(tmp_path):
    put(tmp_path / "real/a.png")
    (tmp_path / "real/broken.png").write_bytes(b"not a png")
    with pytest.raises(InvalidSamplesError, match="broken.png"):
        load_samples(tmp_path)


def test_the_manifest_is_authoritative_and_may_pair_any_paths(tmp_path):
    put(tmp_path / "originals/000/0001.png")
    put(tmp_path / "Deepfakes/000_003/0001.png")
    put(tmp_path / "stylegan/s.png")
    put(tmp_path / "fake/ignored.png")  # folders are not scanned when there is a manifest
    (tmp_path / "manifest.csv").write_text(
        "image,real,kind,property,source\n"
        "originals/000/0001.png,,real,,youtube\n"
        "Deepfakes/000_003/0001.png,originals/000/0001.png,partial,face,Deepfakes\n"
        "stylegan/s.png,,entire,,StyleGAN\n"
    )
    samples = by_name(load_samples(tmp_path))
    assert set(samples) == {"originals/000/0001.png", "Deepfakes/000_003/0001.png", "stylegan/s.png"}
    fake = samples["Deepfakes/000_003/0001.png"]
    assert fake.kind == "partial" and fake.real == tmp_path / "originals/000/0001.png" and fake.property == "face"
    assert samples["stylegan/s.png"].property == "entire"


def test_bad_manifest_rows_are_reported_with_their_line(tmp_path):
    put(tmp_path / "a.png")
    (tmp_path / "manifest.csv").write_text(
        "image,real,kind,property\n"
        "a.png,,real,\n"
        "missing.png,,real,\n"
        "a.png,,swap,\n"
        "a.png,,partial,hair\n"
        "a.png,gone.png,partial,hair\n"
        "a.png,a.png,entire,\n"
    )
    with pytest.raises(InvalidSamplesError) as e:
        load_samples(tmp_path)
    problems = "\n".join(e.value.problems)
    assert len(e.value.problems) == 5
    expected = [(3, "no such file"), (4, "kind must be"), (5, "needs its real image"), (6, "gone.png"), (7, "only kind 'partial'")]
    for line, reason in expected:
        assert f"manifest.csv:{line}" in problems and reason in problems
    (tmp_path / "manifest.csv").write_text("path,type\na.png,real\n")
    with pytest.raises(FakeLocatorError, match="missing column"):
        load_samples(tmp_path)


def test_real_only_and_entire_synthesis_folders_are_added_as_they_are(tmp_path):
    put(tmp_path / "data/real/a.png")
    put(tmp_path / "data/fake/a.png")
    put(tmp_path / "ffhq/00/1.png")
    put(tmp_path / "ffhq/01/2.jpg")
    put(tmp_path / "pggan/x.png")
    samples = collect_samples([tmp_path / "data"], real_dirs=[tmp_path / "ffhq"], entire_dirs=[tmp_path / "pggan"])
    assert count_kinds(samples) == {"real": 3, "partial": 1, "entire": 1}
    assert [s.kind for s in load_folder(tmp_path / "pggan", "entire")] == ["entire"]
    with pytest.raises(FakeLocatorError, match="no such directory"):
        load_folder(tmp_path / "nope", "real")
    with pytest.raises(FakeLocatorError, match="neither manifest.csv"):
        load_samples(tmp_path / "ffhq")


def test_read_image_makes_uint8_rgb_from_grey_16_bit_and_rgba(tmp_path):
    bgr = np.array([[[10, 20, 30]]], np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), [[[30, 20, 10]]])
    cv2.imwrite(str(tmp_path / "g.png"), np.array([[7, 200]], np.uint8))
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), [[[7] * 3, [200] * 3]])
    cv2.imwrite(str(tmp_path / "d.png"), np.array([[[0, 257 * 100, 65535]]], np.uint16))
    np.testing.assert_array_equal(read_image(tmp_path / "d.png"), [[[255, 100, 0]]])
    cv2.imwrite(str(tmp_path / "a.png"), np.array([[[1, 2, 3, 0]]], np.uint8))
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), [[[3, 2, 1]]])
    for image in map(read_image, tmp_path.glob("*.png")):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match="bad.png"):
        read_image(tmp_path / "bad.png")


def test_ground_truth_is_zero_for_real_one_for_entire_and_eq7_for_partial(rng):
    real = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    fake = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert not ground_truth(Sample(Path("r.png"), "real"), real).any()
    assert (ground_truth(Sample(Path("e.png"), "entire"), fake) == 1).all()
    partial = Sample(Path("f.png"), "partial", real=Path("r.png"))
    np.testing.assert_array_equal(ground_truth(partial, fake, real), partial_manipulation_map(real, fake))
    with pytest.raises(InputError, match="differs from its real image"):
        ground_truth(partial, fake, real[:4])


def _pairs(n):
    reals = [Sample(Path(f"real/{i}.png"), "real") for i in range(n)]
    fakes = [Sample(Path(f"fake/{i}_{j}.png"), "partial", real=Path(f"real/{i}.png")) for i in range(n) for j in range(2)]
    return reals + fakes + [Sample(Path(f"entire/{i}.png"), "entire") for i in range(n)]


def test_the_split_is_deterministic_keeps_pairs_together_and_holds_out_the_fraction():
    samples = _pairs(40)  # 160 samples
    train, val = split_samples(samples, 0.25, seed=3)
    assert split_samples(samples, 0.25, seed=3) == (train, val)
    assert set(split_samples(list(reversed(samples)), 0.25, seed=3)[1]) == set(val), "the order found does not matter"
    assert len(train) + len(val) == 160 and not set(train) & set(val)
    assert 38 <= len(val) <= 43
    val_reals = {s.image for s in val if s.kind == "real"}
    assert all((s.real in val_reals) for s in val if s.kind == "partial")
    assert all(s.real not in val_reals for s in train if s.kind == "partial")
    assert set(split_samples(samples, 0.25, seed=4)[1]) != set(val)
    assert split_samples(samples, 0.0, seed=3) == (samples, [])
