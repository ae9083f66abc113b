"""The training run's data: samples found and split, datasets, loaders, batches moved to the device."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from fakelocator.errors import FakeLocatorError
from fakelocator.training.attention.provider import build_attention
from fakelocator.training.dataset import AttentionProvider, EpochSampler, FakeLocatorDataset, worker_init
from fakelocator.training.progress import progress_bar
from fakelocator.training.samples import Sample, collect_samples, count_kinds, split_samples
from fakelocator.training.train_config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Data:
    train: FakeLocatorDataset
    val: FakeLocatorDataset | None


def build_data(
    config: TrainConfig,
    attention_provider: AttentionProvider | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> Data:
    """Find the samples, split off validation, and wrap both sides in datasets.

    Without an ``attention_provider``, ``config.attention`` decides whether the training side gets
    face-parsing attention maps (parsed on ``device`` now, cached next to the data).
    With ``config.stream``, both sides are synthesized on the fly (``training/stream.py``).
    """
    if config.stream is not None:
        return _stream_data(config)
    if not (config.data or config.real_dirs or config.entire_dirs):
        raise FakeLocatorError("no training data: give a dataset root (--data ROOT), --real-dir or --entire-dir")
    samples = collect_samples(
        config.data, real_dirs=config.real_dirs, entire_dirs=config.entire_dirs, skip_invalid=config.skip_invalid
    )
    if config.val:
        val_samples = collect_samples(config.val, skip_invalid=config.skip_invalid)
    elif config.val_fraction > 0:
        samples, val_samples = split_samples(samples, config.val_fraction, config.seed)
        if not val_samples:
            log.warning("validation: %d samples are too few to hold out %.0f%%; training without validation",
                        len(samples), 100 * config.val_fraction)
    else:
        val_samples = []
    if not samples:
        raise FakeLocatorError("no training samples left after holding out the validation set")
    _log_samples("train", samples)
    if val_samples:
        _log_samples("val", val_samples)
    if attention_provider is None:
        attention_provider = build_attention(
            config.attention, samples, device=str(device),
            progress=lambda it, total, desc: progress_bar(it, total=total, desc=desc, enabled=progress),
        )
    pre = config.model.preprocessing
    train = FakeLocatorDataset(samples, pre, augment=config.augment, seed=config.seed, attention_provider=attention_provider)
    val = FakeLocatorDataset(val_samples, pre, augment=None, seed=config.seed) if val_samples else None
    return Data(train, val)


def _stream_data(config: TrainConfig) -> Data:
    from fakelocator.training.stream import Recipe, SynthStream

    pre = config.model.preprocessing
    recipe = Recipe(config.stream)
    train = SynthStream(config.stream, pre, length=config.stream_items, seed=config.seed, recipe=recipe)
    val = (SynthStream(config.stream, pre, length=config.stream_val_items, seed=config.seed + 1, recipe=recipe, fixed_epoch=0)
           if config.stream_val_items else None)
    log.info("train: %d synthesized %d-px crops per epoch from %d photos and %d families (%s); val: %d fixed items",
             len(train), train.crop, len(recipe.photos), len(recipe.families) + len(recipe.trained),
             ", ".join([*recipe.families, *recipe.trained]), len(val or ()))
    return Data(train, val)


def _log_samples(name: str, samples: list[Sample]) -> None:
    kinds = count_kinds(samples)
    log.info("%s: %d images (%d real, %d partial, %d entire)",
             name, len(samples), kinds["real"], kinds["partial"], kinds["entire"])


def make_loader(
    dataset: FakeLocatorDataset, sampler: EpochSampler, config: TrainConfig, device: torch.device, *, train: bool
) -> DataLoader:
    # Drop an incomplete last batch in training (BatchNorm statistics over a single image are
    # meaningless, and the DeepLab pooling branch refuses them), unless there is no full batch.
    drop_last = train and len(sampler) >= config.batch_size
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        worker_init_fn=worker_init if config.workers else None,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
    )


def to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}
