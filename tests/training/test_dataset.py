import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fakelocator.contract import Preprocessing, resize_bilinear, to_network_input
from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.training.augment import AugmentConfig
from fakelocator.training.dataset import EpochSampler, FakeLocatorDataset, epoch_order
from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.samples import Sample, load_samples, read_image

PRE = Preprocessing(height=16, width=32)  # not the images' 32×32: every item is resized
NO_AUGMENT = AugmentConfig(p_real=0.0, p_fake=0.0)
FLIP_ONLY = AugmentConfig(p_real=1.0, p_fake=1.0, p_hflip=1.0, p_color=0, p_lowres=0, p_blur=0, p_noise=0, p_jpeg=0)


@pytest.fixture
def mixed(toy_data):
    return load_samples(toy_data["mixed"])


def test_items_have_the_network_shapes_ranges_and_labels(mixed):
    ds = FakeLocatorDataset(mixed, PRE, augment=NO_AUGMENT)
    for i, sample in enumerate(mixed):
        item = ds[i]
        assert item["image"].shape == (3, 16, 32) and item["image"].dtype == torch.float32
        assert item["map"].shape == (1, 16, 32) and 0 <= item["map"].min() and item["map"].max() <= 1
        assert item["attention"].shape == (1, 16, 32) and (item["attention"] == 1).all()
        assert item["label"].item() == sample.label and item["index"] == i and item["path"] == str(sample.image)
        expected = {"real": (0.0, 0.0), "entire": (1.0, 1.0)}.get(sample.kind)
        if expected:
            assert (item["map"].min().item(), item["map"].max().item()) == expected


def test_image_and_ground_truth_are_resized_by_the_contract_from_full_resolution(mixed):
    ds = FakeLocatorDataset(mixed, PRE)
    i = next(i for i, s in enumerate(mixed) if s.kind == "partial")
    fake, real = read_image(mixed[i].image), read_image(mixed[i].real)
    item = ds[i]
    np.testing.assert_array_equal(item["image"].numpy(), to_network_input(fake, PRE, "RGB"))
    gt = np.clip(resize_bilinear(partial_manipulation_map(real, fake), 16, 32), 0, 1)
    np.testing.assert_array_equal(item["map"][0].numpy(), gt)
    assert item["map"].max() > 0.1, "the toy square is marked"


def test_augmentation_is_a_function_of_seed_epoch_and_index(mixed):
    flips = AugmentConfig(p_real=1.0, p_fake=1.0, p_hflip=0.5, p_color=0.5, p_jpeg=0.5)
    ds = FakeLocatorDataset(mixed, PRE, augment=flips, seed=5)
    again = FakeLocatorDataset(mixed, PRE, augment=flips, seed=5)
    first = [ds[i]["image"] for i in range(len(mixed))]
    assert all(torch.equal(a, again[i]["image"]) for i, a in enumerate(first))
    ds.set_epoch(1)
    assert any(not torch.equal(a, ds[i]["image"]) for i, a in enumerate(first)), "another epoch, other draws"
    ds.set_epoch(0)
    assert all(torch.equal(a, ds[i]["image"]) for i, a in enumerate(first)), "and back"


def test_a_flip_moves_the_ground_truth_with_the_image(mixed):
    i = next(i for i, s in enumerate(mixed) if s.kind == "partial")
    plain = FakeLocatorDataset(mixed, PRE, augment=NO_AUGMENT)[i]
    flipped = FakeLocatorDataset(mixed, PRE, augment=FLIP_ONLY)[i]
    torch.testing.assert_close(flipped["map"], plain["map"].flip(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1), rtol=0, atol=1e-5)


def test_the_attention_provider_sees_the_image_as_read_and_its_map_follows_flips(mixed):
    seen = []

    def left_half(sample, image):
        seen.append((sample, image.shape))
        a = np.zeros(image.shape[:2], np.float32)
        a[:, : image.shape[1] // 2] = 1
        return a

    item = FakeLocatorDataset(mixed, PRE, augment=FLIP_ONLY, attention_provider=left_half)[0]
    assert seen == [(mixed[0], (32, 32, 3))]
    assert (item["attention"][0, :, :16] == 0).all() and (item["attention"][0, :, 16:] == 1).all()
    bad = FakeLocatorDataset(mixed, PRE, attention_provider=lambda s, im: np.ones((3, 3), np.float32))
    with pytest.raises(FakeLocatorError, match="attention provider returned shape"):
        bad[0]


def test_the_batches_do_not_depend_on_the_number_of_workers(mixed):
    ds = FakeLocatorDataset(mixed, PRE, augment=AugmentConfig(), seed=3)

    def batches(workers):
        sampler = EpochSampler(len(ds), seed=3)
        sampler.set_epoch(2)
        ds.set_epoch(2)
        return [b for b in DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)]

    for a, b in zip(batches(0), batches(2), strict=True):
        assert a["index"].tolist() == b["index"].tolist()
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["map"], b["map"])


def test_the_epoch_order_is_a_seeded_permutation_and_the_sampler_can_stop_early():
    assert sorted(epoch_order(10, 0, 0)) == list(range(10))
    assert (epoch_order(10, 0, 0) == epoch_order(10, 0, 0)).all() and not (epoch_order(10, 0, 0) == epoch_order(10, 0, 1)).all()
    sampler = EpochSampler(10, seed=0, limit=4)
    assert len(sampler) == 4 and list(sampler) == epoch_order(10, 0, 0)[:4].tolist()
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_a_pair_that_changed_size_on_disk_fails_naming_it(tmp_path, rng):
    import cv2

    (tmp_path / "r.png").write_bytes(cv2.imencode(".png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))[1].tobytes())
    (tmp_path / "f.png").write_bytes(cv2.imencode(".png", rng.integers(0, 255, (8, 9, 3), dtype=np.uint8))[1].tobytes())
    ds = FakeLocatorDataset([Sample(tmp_path / "f.png", "partial", real=tmp_path / "r.png")], PRE)
    with pytest.raises(InputError, match="f.png"):
        ds[0]
