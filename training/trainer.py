"""Training FakeLocator (paper Sec. IV, V-A): a row of plain functions in the torchvision-references style.

``train(config)`` builds the data (``build_data``), the model and Adam, then for each epoch runs
``train_one_epoch`` and ``evaluate`` and writes, under ``config.out``:

- ``config.yaml``: the resolved ``TrainConfig`` (``fakelocator train --config`` reads it back);
- ``checkpoints/epoch_NNN.pt`` and ``last.pt``: model, optimizer, completed epochs, every RNG state,
  model and training configs, metrics and provenance; plain values only, so
  ``torch.load(path, weights_only=True)`` reads them;
- ``metrics.jsonl``: one JSON object per completed epoch (train loss, val loss, ACC, AUC, COSS, PSNR);
- ``model.safetensors`` at the end: the final weights with config, contract and provenance.

``train(config, resume=True)`` continues a killed run from ``last.pt``. Data order and augmentation
are functions of (seed, epoch, index) and the RNG states are restored, so on the CPU a resumed run
ends with the same weights, bit for bit, as one that was never interrupted.

The loop lives here; its parts have their own modules: ``train_config`` (``TrainConfig`` and its
YAML file), ``train_data`` (samples, datasets, loaders), ``validation`` (``evaluate``),
``rng`` (RNG states), ``provenance``, ``progress`` and ``checkpoint`` (writing, pruning).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_write_text
from fakelocator.training.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_model,
    prune_checkpoints,
    save_checkpoint,
    save_weights,
)
from fakelocator.training.dataset import AttentionProvider, EpochSampler
from fakelocator.training.losses import LossConfig, total_loss
from fakelocator.training.model import FakeLocatorNet, build_model
from fakelocator.training.progress import Heartbeat, progress_bar
from fakelocator.training.provenance import provenance
from fakelocator.training.rng import rng_state, seed_everything, set_rng_state
from fakelocator.training.train_config import LR_SCHEDULES, TrainConfig, load_config, write_config
from fakelocator.training.train_data import Data, build_data, make_loader, to_device
from fakelocator.training.validation import PSNR_CAP, evaluate, map_quality

# The run's parts live in their own modules; these names stay importable from here.
__all__ = [
    "CHECKPOINT_FORMAT", "LR_SCHEDULES", "PSNR_CAP", "Data", "TrainConfig", "TrainResult", "build_data", "evaluate",
    "learning_rate", "load_config", "make_loader", "map_quality", "provenance", "resolve_device", "rng_state",
    "seed_everything", "set_rng_state", "train", "train_one_epoch", "write_config",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    out: Path
    weights: Path
    last_checkpoint: Path
    epochs: int
    metrics: list[dict]
    wall_time: float
    device: str


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise FakeLocatorError(f"device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FakeLocatorError(f"device {name!r}: CUDA is not available on this machine (torch {torch.__version__})")
    return device


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of global step ``step`` (0-based) of ``total_steps``.

    A pure function of the step, so resuming needs no scheduler state.
    """
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    return config.lr


def train_one_epoch(
    model: FakeLocatorNet,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_config: LossConfig,
    device: torch.device,
    *,
    epoch: int,
    epochs: int,
    lr_at=None,
    progress: bool | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean losses, steps, images and images per second.

    ``lr_at(step)``, when given, sets the learning rate before each step of this epoch (0-based).
    """
    model.train()
    sums = {"loss": 0.0, "map": 0.0, "cls": 0.0}
    steps = images = 0
    start = time.perf_counter()
    bar = progress_bar(loader, total=len(loader), desc=f"epoch {epoch}/{epochs} train", enabled=progress)
    heartbeat = Heartbeat(f"epoch {epoch}/{epochs}", len(loader), enabled=bar.disable and progress is not False)
    for batch in bar:
        batch = to_device(batch, device)
        out = model(batch["image"], attention=batch["attention"])
        parts = total_loss(out, batch["map"], batch["label"], loss_config)
        if not torch.isfinite(parts["loss"]):
            raise FakeLocatorError(
                f"epoch {epoch}, step {steps + 1}: the loss is {parts['loss'].item()}; lower the learning rate "
                f"(first image of the batch: {batch['path'][0]})"
            )
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(steps)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        n = batch["image"].shape[0]
        for k in sums:
            sums[k] += parts[k].item() * n
        steps, images = steps + 1, images + n
        bar.set_postfix(loss=f"{sums['loss'] / images:.4f}", refresh=False)
        heartbeat.beat(steps, images, sums["loss"] / images)
    seconds = time.perf_counter() - start
    if images == 0:
        raise FakeLocatorError("the training loader produced no batch")
    return {
        "loss": sums["loss"] / images,
        "map_loss": sums["map"] / images,
        "cls_loss": sums["cls"] / images,
        "steps": steps,
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 else None,
        "lr": optimizer.param_groups[0]["lr"],
    }


def _init_from(model: FakeLocatorNet, path: str) -> None:
    """Load a whole trained network into ``model``, refusing one whose network config differs."""
    init, _ = load_model(path)
    if init.config != model.config:
        ours, theirs = model.config.to_dict(), init.config.to_dict()
        diff = ", ".join(f"{k}: {theirs[k]!r} there, {ours[k]!r} here" for k in ours if ours[k] != theirs[k])
        raise FakeLocatorError(f"init weights {path}: a different network ({diff}); train with its model settings")
    model.load_state_dict(init.state_dict())
    log.info("starting from the weights of %s", path)


def _write_metrics(history: list[dict], path: Path) -> None:
    atomic_write_text(path, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))


def _format_epoch(record: dict) -> str:
    t = record["train"]
    text = (f"epoch {record['epoch']}/{record['epochs']}: "
            f"train loss {t['loss']:.4f} (map {t['map_loss']:.4f}, cls {t['cls_loss']:.4f})")
    v = record.get("val")
    if v:
        def f(x, spec):
            return "n/a" if x is None else format(x, spec)
        text += (f" | val loss {v['loss']:.4f} (map {v['map_loss']:.4f}) acc {f(v['acc'], '.3f')} auc {f(v['auc'], '.3f')}"
                 f" coss {f(v['coss'], '.3f')} psnr {f(v['psnr'], '.2f')}")
    return text + f" | {t['seconds']:.1f} s, {t['images_per_s'] or 0:.1f} img/s"


@contextmanager
def _runtime_settings(config: TrainConfig, device: torch.device):
    """Thread counts and determinism for the run, restored afterwards (this is a library call)."""
    import cv2

    old_threads, old_cv2 = torch.get_num_threads(), cv2.getNumThreads()
    old_det, old_bench = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    if config.threads:
        torch.set_num_threads(config.threads)
        cv2.setNumThreads(config.threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not config.deterministic
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        cv2.setNumThreads(old_cv2)
        torch.use_deterministic_algorithms(old_det)
        torch.backends.cudnn.benchmark = old_bench


_RESUME_MAY_DIFFER = {"epochs", "device", "workers", "threads", "out", "max_val_steps", "keep_checkpoints"}


def _check_resumable(saved: dict, config: TrainConfig, path: Path) -> None:
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise FakeLocatorError(f"{path}: not a fakelocator training checkpoint (format {saved.get('format')!r})")
    if saved["model_config"] != config.model.to_dict():
        raise FakeLocatorError(f"{path}: was trained with another model config; resume with the run's own config.yaml")
    old = saved["train_config"]
    new = config.to_dict()
    changed = sorted(k for k in new if k not in _RESUME_MAY_DIFFER and old.get(k) != new[k])
    if changed:
        log.warning("resuming with changed settings %s: the run will not match an uninterrupted one", ", ".join(changed))


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    command: str | None = None,
    attention_provider: AttentionProvider | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train a FakeLocator network as ``config`` says; see the module docstring for what is written.

    Args:
        config: the run's settings.
        resume: continue from ``OUT/last.pt`` instead of starting (a run refuses to start over an
            existing one).
        command: the command line recorded in the provenance; defaults to ``sys.argv``.
        attention_provider: face-attention maps for the training images (Sec. IV-C); replaces
            what ``config.attention`` would build.
        progress: show progress bars; ``None`` shows them when stderr is a terminal.
    """
    out = Path(config.out)
    last = out / "last.pt"
    saved = None
    if resume:
        if not last.is_file():
            raise FakeLocatorError(f"nothing to resume: {last} does not exist")
        saved = load_checkpoint(last)
        _check_resumable(saved, config, last)
    elif last.exists():
        raise FakeLocatorError(
            f"{out} already holds a training run ({last}); pass --resume to continue it or choose another --out"
        )
    command = command if command is not None else " ".join(shlex.quote(a) for a in sys.argv)
    device = resolve_device(config.device)
    with _runtime_settings(config, device):
        return _train(config, out, device, saved, command, attention_provider, progress)


def _train(config, out, device, saved, command, attention_provider, progress) -> TrainResult:
    started = time.perf_counter()
    seed_everything(config.seed)
    data = build_data(config, attention_provider, device=device, progress=progress)
    model = build_model(config.model, pretrained_backbone=None if saved else config.pretrained_backbone)
    if saved is None and config.init_weights is not None:
        _init_from(model, config.init_weights)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    train_sampler = EpochSampler(
        len(data.train), seed=config.seed, shuffle=True,
        limit=None if config.max_steps_per_epoch is None else config.max_steps_per_epoch * config.batch_size,
    )
    train_loader = make_loader(data.train, train_sampler, config, device, train=True)
    val_loader = None
    if data.val is not None:
        val_sampler = EpochSampler(
            len(data.val), shuffle=False,
            limit=None if config.max_val_steps is None else config.max_val_steps * config.batch_size,
        )
        val_loader = make_loader(data.val, val_sampler, config, device, train=False)

    start_epoch, history, previous_time = 0, [], 0.0
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start_epoch, history, previous_time = int(saved["epoch"]), list(saved["metrics"]), float(saved["wall_time"])
        set_rng_state(saved["rng"])
        log.info("resuming %s after epoch %d of %d", out, start_epoch, config.epochs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    write_config(config, out / "config.yaml")
    log.info("training %s on %s for %d epochs -> %s", config.model.backbone, device, config.epochs, out)

    steps_per_epoch = len(train_loader)
    for epoch in range(start_epoch, config.epochs):
        train_sampler.set_epoch(epoch)
        data.train.set_epoch(epoch)
        train_stats = train_one_epoch(
            model, train_loader, optimizer, config.loss, device, epoch=epoch + 1, epochs=config.epochs,
            lr_at=lambda i, e=epoch: learning_rate(config, e * steps_per_epoch + i, config.epochs * steps_per_epoch),
            progress=progress,
        )
        val_stats = evaluate(model, val_loader, config.loss, device, progress=progress) if val_loader else None
        record = {"epoch": epoch + 1, "epochs": config.epochs, "train": train_stats, "val": val_stats}
        history.append(record)
        log.info("%s", _format_epoch(record))
        wall = previous_time + time.perf_counter() - started
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": rng_state(),
            "model_config": config.model.to_dict(),
            "train_config": config.to_dict(),
            "metrics": history,
            "provenance": provenance(config, data, device, command, epoch + 1, wall),
            "wall_time": wall,
            "fakelocator_version": __version__,
        }
        save_checkpoint(out / "checkpoints" / f"epoch_{epoch + 1:03d}.pt", state)
        save_checkpoint(out / "last.pt", state)
        _write_metrics(history, out / "metrics.jsonl")
        prune_checkpoints(out / "checkpoints", config.keep_checkpoints)

    wall = previous_time + time.perf_counter() - started
    weights = out / "model.safetensors"
    save_weights(weights, model, provenance=provenance(config, data, device, command, len(history), wall))
    _write_metrics(history, out / "metrics.jsonl")
    log.info("wrote %s (%.1f s of training)", weights, wall)
    return TrainResult(out, weights, out / "last.pt", len(history), history, wall, str(device))
