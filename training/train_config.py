"""The training run's settings: ``TrainConfig`` (beside ``config.ModelConfig``) and its YAML file.

``fakelocator train`` writes the resolved config as ``OUT/config.yaml``; ``--config`` reads it back
(``load_config``), missing keys keeping their defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_write_text
from fakelocator.training.attention.provider import AttentionConfig
from fakelocator.training.stream import StreamConfig
from fakelocator.training.augment import AugmentConfig
from fakelocator.training.config import ModelConfig
from fakelocator.training.losses import LossConfig

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
        stream: synthesize training crops on the fly (``training/stream.py``, a ``StreamConfig``)
            instead of (or, with ``data``, never besides) reading datasets from disk: an endless,
            seeded stream; None = read ``data``.
        stream_items: with ``stream``: items per epoch (each epoch is a fresh draw).
        stream_val_items: with ``stream``: size of the fixed validation draw (seed + 1); 0 = none.
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
    stream: StreamConfig | None = None
    stream_items: int = 8000
    stream_val_items: int = 256

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
        if isinstance(self.stream, dict):
            object.__setattr__(self, "stream", StreamConfig.from_dict(self.stream))
        if self.stream is not None and (self.data or self.real_dirs or self.entire_dirs):
            problems.append("give either a synthesis stream or dataset folders (data, real_dirs, entire_dirs), not both")
        for name in ("stream_items", "stream_val_items"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                problems.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if problems:
            raise FakeLocatorError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["model"], d["loss"], d["augment"] = self.model.to_dict(), asdict(self.loss), self.augment.to_dict()
        d["attention"] = self.attention.to_dict()
        d["stream"] = None if self.stream is None else self.stream.to_dict()
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


def write_config(config: TrainConfig, path: Path) -> None:
    import yaml

    atomic_write_text(path, f"# fakelocator train --config {path}\n" + yaml.safe_dump(config.to_dict(), sort_keys=False))


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
