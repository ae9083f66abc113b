"""The training dataset: image + ground truth at full resolution → augmented → network resolution.

For sample ``index`` in epoch ``epoch``:

1. read the image (and, for a partial fake, its real image) as uint8 RGB at full resolution;
2. make the ground-truth map at full resolution (Eq. 7, ``samples.ground_truth``), and the
   face-attention map from ``attention_provider`` when one is given;
3. augment (``augment.py``; geometric steps move both maps with the image);
4. ``fit`` contract: resize the image by the preprocessing contract (``fakelocator.contract``) and
   both maps by the same bilinear rule to the network's size; ``native`` contract
   (``fakelocator.tiling``): cut one random tile-sized crop at the image's own scale, identically
   from the image and both maps (mirrored padding where the image is smaller, as the runtime
   pads tiles; never a resize), the crop centred near the manipulated region most of the time
   (``NATIVE_REGION_CROP``); then normalize the image by the contract. A partial fake whose crop
   holds too little of the manipulation (``crop_label``) is labelled real for that crop.

Every random choice comes from ``numpy.random.default_rng([seed, epoch, index])``, and the order
of an epoch from ``[seed, epoch]``, so data order and augmentation depend on neither the number of
workers nor on where a run was stopped and resumed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fakelocator.contract import Preprocessing, resize_bilinear, to_network_input, to_network_tiles
from fakelocator.errors import FakeLocatorError
from fakelocator.tiling import pad_to
from fakelocator.training.augment import AugmentConfig, augment_sample
from fakelocator.training.samples import Sample, ground_truth, read_image

#: ``attention_provider(sample, image)``: the sample and its uint8 (H, W, 3) RGB image as read
#: (before augmentation) → float32 (H, W) attention in [0, 1] at the same resolution. It is moved by
#: the geometric augmentations with the image, and resized by the contract's bilinear rule.
AttentionProvider = Callable[[Sample, np.ndarray], np.ndarray]

#: Share of partial-fake crops centred near the manipulated region in native training; validation
#: (no augmentation) always centres on it.
NATIVE_REGION_CROP = 0.85
#: A crop counts as fake when at least this share of its pixels changed by at least 0.02 (Eq. 7, 5 levels).
CROP_FAKE_AREA, CROP_FAKE_LEVEL = 0.004, 0.02
_SAMPLE_STREAM = 0x5A3F  # separate the per-sample and the per-epoch order random streams
_ORDER_STREAM = 0x0D3E


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of every random choice made for one sample in one epoch."""
    return np.random.default_rng([_SAMPLE_STREAM, seed, epoch, index])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which an epoch visits ``n`` samples."""
    return np.random.default_rng([_ORDER_STREAM, seed, epoch]).permutation(n)


class FakeLocatorDataset(Dataset):
    """Samples → dicts of tensors for the trainer.

    Items are dicts with ``image`` (3, h, w) float32 normalized by the contract; ``map`` (1, h, w)
    float32 ground truth in [0, 1]; ``label`` float32 scalar (0 real, 1 fake); ``attention``
    (1, h, w) float32 (all ones without a provider); ``index`` int; ``path`` str.

    Args:
        samples: what ``samples.collect_samples`` found.
        preprocessing: the model's input contract (size, colour order, mean and std).
        augment: partial augmentation settings; ``None`` (validation) augments nothing.
        seed: with the epoch and the index, fixes every random choice.
        attention_provider: optional face-attention maps (see ``AttentionProvider``).
    """

    def __init__(
        self,
        samples: list[Sample],
        preprocessing: Preprocessing,
        *,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        attention_provider: AttentionProvider | None = None,
    ):
        if not samples:
            raise FakeLocatorError("a dataset needs at least one sample")
        self.samples = list(samples)
        self.preprocessing = preprocessing
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = int(seed)
        self.attention_provider = attention_provider
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentations ``__getitem__`` draws. Call before iterating a loader
        (non-persistent workers copy the dataset when the iteration starts)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def load_full_resolution(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Image (H, W, 3) uint8 RGB, ground truth (H, W) float32 and attention (H, W) float32 or None."""
        sample = self.samples[index]
        image = read_image(sample.image)
        real = read_image(sample.real) if sample.kind == "partial" else None
        gt = ground_truth(sample, image, real)
        attention = None
        if self.attention_provider is not None:
            attention = np.asarray(self.attention_provider(sample, image), dtype=np.float32)
            if attention.shape != gt.shape:
                raise FakeLocatorError(
                    f"{sample.image}: the attention provider returned shape {attention.shape}, "
                    f"expected the image's {gt.shape}"
                )
        return image, gt, attention

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, gt, attention = self.load_full_resolution(index)
        if self.augment is not None:
            maps = [gt] if attention is None else [gt, attention]
            rng = sample_rng(self.seed, self.epoch, index)
            image, maps, _ = augment_sample(image, maps, sample.label == 1, self.augment, rng)
            gt, attention = maps[0], (maps[1] if attention is not None else None)
        c = self.preprocessing
        label = float(sample.label)
        if c.native:
            rng = sample_rng(self.seed, self.epoch, index + (1 << 40))
            image, gt, attention = native_crop(image, gt, attention, c.height, rng, centre=self.augment is None)
            if sample.kind == "partial":
                label = crop_label(gt)
            x = to_network_tiles(image, c, "RGB")[0][0]  # (3, h, w): the one tile of a tile-sized crop
            target = np.clip(gt, 0.0, 1.0)[None]
            att = np.ones((1, c.height, c.width), np.float32) if attention is None else np.clip(attention, 0.0, 1.0)[None]
        else:
            x = to_network_input(image, c, "RGB")  # (3, h, w)
            target = np.clip(resize_bilinear(gt, c.height, c.width), 0.0, 1.0)[None]  # (1, h, w)
            if attention is None:
                att = np.ones((1, c.height, c.width), np.float32)
            else:
                att = np.clip(resize_bilinear(attention, c.height, c.width), 0.0, 1.0)[None]
        return {
            "image": torch.from_numpy(x),
            "map": torch.from_numpy(np.ascontiguousarray(target)),
            "label": torch.tensor(label, dtype=torch.float32),
            "attention": torch.from_numpy(np.ascontiguousarray(att)),
            "index": index,
            "path": str(sample.image),
        }


def crop_label(gt: np.ndarray) -> float:
    """1.0 when enough of a partial fake's crop was changed to call the crop fake (see the module)."""
    return float(float((gt >= CROP_FAKE_LEVEL).mean()) >= CROP_FAKE_AREA)


def native_crop(image: np.ndarray, gt: np.ndarray, attention: np.ndarray | None, size: int,
                rng: np.random.Generator, *, centre: bool = False):
    """The same size × size crop of image, ground truth and attention, at native scale.

    Near the manipulated region (the ground truth's strongest pixels) with probability
    ``NATIVE_REGION_CROP`` (always with ``centre``), else anywhere; mirrored padding where the
    image is smaller than the crop (the runtime's tile rule).
    """
    h, w = gt.shape
    if centre or rng.random() < NATIVE_REGION_CROP:
        changed = gt >= CROP_FAKE_LEVEL
        if changed.any() and not changed.all():
            ys, xs = np.nonzero(changed)
            cy, cx = int(np.median(ys)), int(np.median(xs))
        else:
            cy, cx = h // 2, w // 2
        if not centre:
            cy += int(rng.integers(-size // 4, size // 4 + 1))
            cx += int(rng.integers(-size // 4, size // 4 + 1))
        y0, x0 = int(np.clip(cy - size // 2, 0, max(0, h - size))), int(np.clip(cx - size // 2, 0, max(0, w - size)))
    else:
        y0, x0 = int(rng.integers(0, max(1, h - size + 1))), int(rng.integers(0, max(1, w - size + 1)))
    image, gt, attention = (None if a is None else np.ascontiguousarray(pad_to(a, size, size)[y0:y0 + size, x0:x0 + size])
                            for a in (image, gt, attention))
    return image, gt, attention


class EpochSampler(Sampler[int]):
    """Visits the dataset in ``epoch_order(n, seed, epoch)`` (or in order when ``shuffle`` is off),
    optionally only its first ``limit`` indices."""

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True, limit: int | None = None):
        self.n, self.seed, self.shuffle, self.limit = n, int(seed), shuffle, limit
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.epoch) if self.shuffle else np.arange(self.n)
        if self.limit is not None:
            order = order[: self.limit]
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.n if self.limit is None else min(self.n, self.limit)


def worker_init(_worker_id: int) -> None:
    """Data-loader workers: one OpenCV thread each; the workers already give the parallelism."""
    import cv2

    cv2.setNumThreads(1)
