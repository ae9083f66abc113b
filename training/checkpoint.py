"""Checkpoints that load without unpickling arbitrary objects.

Two formats:

- a training checkpoint (``.pt``): model and optimizer state, epoch, RNG states, the model and
  training configs and metrics, all plain tensors, numbers, strings, lists and dicts, so that
  ``torch.load(path, weights_only=True)`` reads it;
- a weights file (``.safetensors``): the model's tensors, with the model config, preprocessing
  contract and provenance as JSON strings in its metadata. This is what ships and what export reads.

``load_model`` accepts either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_path
from fakelocator.metadata import CONFIG_KEY, PREPROCESSING_KEY, PROVENANCE_KEY, VERSION_KEY
from fakelocator.training.config import ModelConfig
from fakelocator.training.model import FakeLocatorNet, build_model


#: ``format`` of a training checkpoint (``trainer.train`` writes it, resuming checks it).
CHECKPOINT_FORMAT = "fakelocator.train_checkpoint/1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training checkpoint atomically. ``state`` must hold only weights-only-loadable values."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep only the newest ``keep`` ``epoch_NNN.pt`` in ``folder``; ``keep <= 0`` keeps all."""
    if keep <= 0:
        return
    for old in sorted(Path(folder).glob("epoch_*.pt"))[:-keep]:
        old.unlink()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FakeLocatorError(f"checkpoint {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise FakeLocatorError(f"checkpoint {path}: cannot be read safely ({e})") from None


def save_weights(path: str | Path, model: FakeLocatorNet, provenance: dict[str, Any] | None = None) -> None:
    """Write the model's tensors and its config, contract and provenance as a ``.safetensors`` file."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True),
        PREPROCESSING_KEY: model.config.preprocessing.to_json(),
        PROVENANCE_KEY: json.dumps(provenance or {}, sort_keys=True),
        VERSION_KEY: __version__,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def _read(path: str | Path, *, tensors: bool) -> tuple[ModelConfig, dict | None, dict[str, Any]]:
    """(network config, state dict or None, provenance) of a ``.safetensors`` file or ``.pt`` checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FakeLocatorError(f"model {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()} if tensors else None
        except Exception as e:  # noqa: BLE001
            raise FakeLocatorError(f"model {path}: not a readable safetensors file ({e})") from None
        if CONFIG_KEY not in meta:
            raise FakeLocatorError(f"model {path}: no {CONFIG_KEY} in its metadata; not a fakelocator weights file")
        return ModelConfig.from_dict(json.loads(meta[CONFIG_KEY])), state, json.loads(meta.get(PROVENANCE_KEY, "{}"))
    ckpt = load_checkpoint(path)
    if "model" not in ckpt or "model_config" not in ckpt:
        raise FakeLocatorError(f"model {path}: not a fakelocator training checkpoint (no model or model_config)")
    return ModelConfig.from_dict(ckpt["model_config"]), ckpt["model"], ckpt.get("provenance", {})


def read_model_config(path: str | Path) -> ModelConfig:
    """The network config stored in a ``.safetensors`` weights file or a ``.pt`` training checkpoint."""
    return _read(path, tensors=False)[0]


def default_weights_path() -> Path:
    """The embedded default model's weights, ``fakelocator/weights/default/model.safetensors``."""
    import fakelocator

    return Path(fakelocator.__file__).resolve().parent / "weights" / "default" / "model.safetensors"


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[FakeLocatorNet, dict[str, Any]]:
    """Rebuild a network from a ``.safetensors`` weights file or a ``.pt`` training checkpoint.

    Returns the model in eval mode and its provenance dict.
    """
    config, state, provenance = _read(path, tensors=True)
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise FakeLocatorError(f"model {path}: weights do not match its config ({e})") from None
    return model.to(map_location).eval(), provenance
