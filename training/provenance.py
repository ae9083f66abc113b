"""Provenance of a trained model: versions, commit, command, data, device, time; stored in its checkpoints and weights."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fakelocator import __version__
from fakelocator.gitstate import git_state
from fakelocator.training.samples import count_kinds
from fakelocator.training.train_config import TrainConfig

if TYPE_CHECKING:
    from fakelocator.training.train_data import Data


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
        "train_images": _count(data.train),
        "val_images": _count(data.val) if data.val else {},
        "stream": None if config.stream is None else {
            **config.stream.to_dict(), "items_per_epoch": config.stream_items, "val_items": config.stream_val_items,
            "families_used": list(getattr(getattr(data.train, "recipe", None), "families", ()) or ()),
            "trained_families_used": list(getattr(getattr(data.train, "recipe", None), "trained", ()) or ()),
        },
        "seed": config.seed,
        "epochs": epochs,
        "wall_time_s": round(wall_time, 3),
        "pretrained_backbone": config.pretrained_backbone,
        "init_weights": config.init_weights,
        "attention": _attention_provenance(getattr(data.train, "attention_provider", None)),
    }


def _count(dataset) -> dict:
    if hasattr(dataset, "samples"):
        return count_kinds(dataset.samples)
    return {"synthesized_per_epoch": len(dataset)}


def _attention_provenance(provider) -> dict | str | None:
    """What made the training attention maps: None (no attention), the parser, or "custom"."""
    if provider is None:
        return None
    describe = getattr(provider, "describe", None)
    return describe() if describe is not None else "custom"
