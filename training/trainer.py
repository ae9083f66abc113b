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
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shlex
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.gitstate import git_state
from fakelocator.training.attention.provider import AttentionConfig, build_attention
from fakelocator.training.augment import AugmentConfig
from fakelocator.training.checkpoint import load_checkpoint, load_model, save_checkpoint, save_weights
from fakelocator.training.config import ModelConfig
from fakelocator.training.dataset import AttentionProvider, EpochSampler, FakeLocatorDataset, worker_init
from fakelocator.training.losses import LossConfig, total_loss
from fakelocator.training.model import FakeLocatorNet, build_model
from fakelocator.training.samples import Sample, collect_samples, count_kinds, split_samples

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fakelocator.train_checkpoint/1"
#: PSNR of a map identical to its ground truth (the MSE is floored at 1e-10).
PSNR_CAP = 100.0
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as ``OUT/config.yaml`` and in every checkpoint.

    Args:
        data: dataset roots to train on (``docs/data.md``).
        val: dataset roots to validate on; when empty, ``val_fraction`` of ``data`` is held out.
        real_dirs: extra folders of real images (training only).
        entire_dirs: extra folders of entire syntheses (training only).
        val_fraction: share of the training samples held out when ``val`` is empty; 0 = no validation.
        skip_invalid: leave out unpaired or mis-sized samples with a warning each instead of failing.
        model, loss, augment: the network, the loss and the partial augmentation.
        attention: face-parsing attention maps for training (Sec. IV-C, ``training/attention``).
        pretrained_backbone: local torchvision checkpoint to start the encoder from (never downloaded).
        init_weights: a fakelocator weights file (``.safetensors``) or training checkpoint (``.pt``)
            to start the whole network from — fine-tuning, e.g. the default model on real GAN edits.
            Its network config must equal ``model``. The optimizer and schedule start afresh.
        epochs, batch_size, lr, betas, weight_decay: Adam and schedule; the defaults are the paper's (Sec. V-A).
        lr_schedule: ``constant`` (the paper's) or ``cosine`` (decays ``lr`` to 0 over the run, per step).
        max_steps_per_epoch: stop each epoch after this many batches (quick runs); None = whole epoch.
        max_val_steps: validate on at most this many batches; None = the whole validation set.
        seed: fixes initialization, data order and augmentation.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        workers: data-loading processes (0 = load in the training process).
        threads: torch and OpenCV threads in the training process; 0 leaves the libraries' defaults.
        deterministic: deterministic algorithms on CUDA too (slower); the CPU is deterministic anyway.
        keep_checkpoints: keep only the newest N ``checkpoints/epoch_NNN.pt``; 0 keeps all.
        out: output folder.
    """

    data: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    real_dirs: tuple[str, ...] = ()
    entire_dirs: tuple[str, ...] = ()
    val_fraction: float = 0.1
    skip_invalid: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    pretrained_backbone: str | None = None
    init_weights: str | None = None
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.99, 0.999)
    weight_decay: float = 1e-7
    lr_schedule: str = "constant"
    max_steps_per_epoch: int | None = None
    max_val_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    workers: int = 4
    threads: int = 0
    deterministic: bool = False
    keep_checkpoints: int = 0
    out: str = "runs/train"

    def __post_init__(self):
        for name in ("data", "val", "real_dirs", "entire_dirs"):
            value = getattr(self, name)
            object.__setattr__(self, name, (str(value),) if isinstance(value, (str, Path)) else tuple(str(v) for v in value))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for name in ("pretrained_backbone", "init_weights"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))
        object.__setattr__(self, "out", str(self.out))
        problems = []
        for name in ("epochs", "batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                problems.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("max_steps_per_epoch", "max_val_steps"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                problems.append(f"{name} must be an integer >= 1 or empty, got {v!r}")
        for name in ("workers", "threads", "keep_checkpoints"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                problems.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if problems:
            raise FakeLocatorError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["model"], d["loss"], d["augment"] = self.model.to_dict(), asdict(self.loss), self.augment.to_dict()
        d["attention"] = self.attention.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise FakeLocatorError(f"training config has unknown fields {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("model"), dict):
            d["model"] = ModelConfig.from_dict(d["model"])
        if isinstance(d.get("loss"), dict):
            unknown = set(d["loss"]) - {f.name for f in fields(LossConfig)}
            if unknown:
                raise FakeLocatorError(f"loss config has unknown fields {sorted(unknown)}")
            d["loss"] = LossConfig(**d["loss"])
        if isinstance(d.get("augment"), dict):
            d["augment"] = AugmentConfig.from_dict(d["augment"])
        if isinstance(d.get("attention"), dict):
            d["attention"] = AttentionConfig.from_dict(d["attention"])
        try:
            return cls(**d)
        except TypeError as e:
            raise FakeLocatorError(f"invalid training config: {e}") from None


@dataclass(frozen=True)
class TrainResult:
    out: Path
    weights: Path
    last_checkpoint: Path
    epochs: int
    metrics: list[dict]
    wall_time: float
    device: str


@dataclass
class Data:
    train: FakeLocatorDataset
    val: FakeLocatorDataset | None


# ----------------------------------------------------------------------------------------- data


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
    """
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
            progress=lambda it, total, desc: _progress(it, total=total, desc=desc, enabled=progress),
        )
    pre = config.model.preprocessing
    train = FakeLocatorDataset(samples, pre, augment=config.augment, seed=config.seed, attention_provider=attention_provider)
    val = FakeLocatorDataset(val_samples, pre, augment=None, seed=config.seed) if val_samples else None
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


# ------------------------------------------------------------------------------------- training


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


def _progress(iterable, *, total: int, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(iterable, total=total, desc=desc, disable=not show, leave=False, dynamic_ncols=True)


HEARTBEAT_SECONDS = 60.0


class _Heartbeat:
    """Without a progress bar (output to a file, CI), a log line every ``HEARTBEAT_SECONDS`` so the log
    shows how far an epoch has got and how fast it goes."""

    def __init__(self, desc: str, total: int, enabled: bool):
        self.desc, self.total, self.enabled = desc, total, enabled
        self.start = self.last = time.perf_counter()

    def beat(self, step: int, images: int, loss: float) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < HEARTBEAT_SECONDS:
            return
        self.last = now
        rate = images / (now - self.start)
        log.info("%s: step %d/%d, loss %.4f, %.1f img/s", self.desc, step, self.total, loss, rate)


def _to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}


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
    bar = _progress(loader, total=len(loader), desc=f"epoch {epoch}/{epochs} train", enabled=progress)
    heartbeat = _Heartbeat(f"epoch {epoch}/{epochs}", len(loader), enabled=bar.disable and progress is not False)
    for batch in bar:
        batch = _to_device(batch, device)
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


def map_quality(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image COSS (cosine similarity of the flattened maps) and PSNR in dB (peak 1) of (N, 1, h, w) maps."""
    p, t = pred.flatten(1).double(), target.flatten(1).double()
    coss = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1)).clamp_min(1e-12)
    mse = (p - t).pow(2).mean(1).clamp_min(10 ** (-PSNR_CAP / 10))
    return coss, -10 * torch.log10(mse)


@torch.no_grad()
def evaluate(
    model: FakeLocatorNet,
    loader: DataLoader,
    loss_config: LossConfig,
    device: torch.device,
    *,
    max_steps: int | None = None,
    progress: bool | None = None,
) -> dict[str, float | None]:
    """Validation metrics at model resolution.

    ``loss``/``map_loss``/``cls_loss``: as in training; ``acc``, ``real_acc``, ``fake_acc``: score
    thresholded at 0.5; ``auc``: ROC AUC of the score (None with a single class); ``coss`` and
    ``psnr``: mean per-image map quality over the fake (partial and entire) images.
    """
    from sklearn.metrics import roc_auc_score

    model.eval()
    sums = {"loss": 0.0, "map": 0.0, "cls": 0.0}
    scores, labels, coss, psnr = [], [], [], []
    total = len(loader) if max_steps is None else min(len(loader), max_steps)
    for step, batch in enumerate(_progress(loader, total=total, desc="validation", enabled=progress)):
        if max_steps is not None and step >= max_steps:
            break
        batch = _to_device(batch, device)
        out = model(batch["image"])  # inference: no attention map (Sec. IV-C)
        parts = total_loss(out, batch["map"], batch["label"], loss_config)
        n = batch["image"].shape[0]
        for k in sums:
            sums[k] += parts[k].item() * n
        scores.append(out["score"].view(-1).float().cpu())
        labels.append(batch["label"].view(-1).cpu())
        fake = batch["label"].view(-1) > 0.5
        if fake.any():
            c, p = map_quality(out["map"][fake], batch["map"][fake])
            coss.append(c.cpu())
            psnr.append(p.cpu())
    score, label = torch.cat(scores).numpy(), torch.cat(labels).numpy()
    n = len(label)
    pred = score >= 0.5
    truth = label > 0.5

    def acc(mask):
        return float((pred[mask] == truth[mask]).mean()) if mask.any() else None

    both = truth.any() and (~truth).any()
    return {
        "loss": sums["loss"] / n,
        "map_loss": sums["map"] / n,
        "cls_loss": sums["cls"] / n,
        "acc": acc(np.ones(n, bool)),
        "real_acc": acc(~truth),
        "fake_acc": acc(truth),
        "auc": float(roc_auc_score(truth, score)) if both else None,
        "coss": float(torch.cat(coss).mean()) if coss else None,
        "psnr": float(torch.cat(psnr).mean()) if psnr else None,
        "images": n,
    }


# ---------------------------------------------------------------------------- state and outputs


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states as weights-only-loadable values."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": [int(k) for k in np_state["state"]["key"]],
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state({
        "bit_generator": n["bit_generator"],
        "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
        "has_gauss": n["has_gauss"],
        "gauss": n["gauss"],
    })
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _git_commit() -> str | None:
    state = git_state(Path(__file__).resolve().parent)
    return None if state is None else state["commit"] + ("-dirty" if state["modified"] else "")


def provenance(config: TrainConfig, data: Data, device: torch.device, command: str, epochs: int, wall_time: float) -> dict:
    return {
        "fakelocator_version": __version__,
        "torch_version": str(torch.__version__),
        "git_commit": _git_commit(),
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "data": list(config.data),
        "val": list(config.val),
        "real_dirs": list(config.real_dirs),
        "entire_dirs": list(config.entire_dirs),
        "train_images": count_kinds(data.train.samples),
        "val_images": count_kinds(data.val.samples) if data.val else {},
        "seed": config.seed,
        "epochs": epochs,
        "wall_time_s": round(wall_time, 3),
        "pretrained_backbone": config.pretrained_backbone,
        "init_weights": config.init_weights,
        "attention": _attention_provenance(data.train.attention_provider),
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


def _attention_provenance(provider) -> dict | str | None:
    """What made the training attention maps: None (no attention), the parser, or "custom"."""
    if provider is None:
        return None
    describe = getattr(provider, "describe", None)
    return describe() if describe is not None else "custom"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_config(config: TrainConfig, path: Path) -> None:
    import yaml

    _write_text_atomic(path, f"# fakelocator train --config {path}\n" + yaml.safe_dump(config.to_dict(), sort_keys=False))


def load_config(path: str | Path) -> TrainConfig:
    """A ``TrainConfig`` from a YAML file (the format of ``OUT/config.yaml``; missing keys keep their defaults)."""
    import yaml

    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise FakeLocatorError(f"config {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise FakeLocatorError(f"config {path}: not valid YAML ({e})") from None
    if not isinstance(d, dict):
        raise FakeLocatorError(f"config {path}: expected a mapping of option names to values")
    try:
        return TrainConfig.from_dict(d)
    except FakeLocatorError as e:
        raise FakeLocatorError(f"config {path}: {e}") from None


def _write_metrics(history: list[dict], path: Path) -> None:
    _write_text_atomic(path, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))


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
        _prune_checkpoints(out / "checkpoints", config.keep_checkpoints)

    wall = previous_time + time.perf_counter() - started
    weights = out / "model.safetensors"
    save_weights(weights, model, provenance=provenance(config, data, device, command, len(history), wall))
    _write_metrics(history, out / "metrics.jsonl")
    log.info("wrote %s (%.1f s of training)", weights, wall)
    return TrainResult(out, weights, out / "last.pt", len(history), history, wall, str(device))


def _prune_checkpoints(folder: Path, keep: int) -> None:
    if keep <= 0:
        return
    for old in sorted(folder.glob("epoch_*.pt"))[:-keep]:
        old.unlink()
