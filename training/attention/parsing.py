"""Face parsers: facexlib's networks from local weights only, or MediaPipe's face mesh (shipped).

facexlib's own ``init_parsing_model`` downloads its weights when they are not in its folder; we
never call it. We build ``BiSeNet(num_class=19)`` or ``ParseNet(512, 512, 19)`` ourselves and load
a state dict from a file the user obtained. The ``mesh`` parser (``mesh.py``) needs no weights to
obtain: its ONNX models ship in the package. ``auto`` is BiSeNet when its weights are found, else
the mesh. Label maps come back in the canonical numbering (``labels.LABELS``), whichever parser
made them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.training.attention.labels import CANONICAL_LUT

PARSING_MODELS = ("auto", "bisenet", "parsenet", "mesh")
#: The parsers that need a weights file (facexlib's).
WEIGHTED_MODELS = ("bisenet", "parsenet")
#: The file names facexlib gives its releases, and where to obtain them (printed, never fetched).
WEIGHTS_FILES = {"bisenet": "parsing_bisenet.pth", "parsenet": "parsing_parsenet.pth"}
WEIGHTS_URLS = {
    "bisenet": "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
    "parsenet": "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
}
WEIGHTS_ENV = "FAKELOCATOR_PARSING_WEIGHTS"
#: The networks' input side (the released weights are trained at 512 × 512).
INPUT_SIDE = 512
#: Input normalization of each network (facexlib's inference scripts): mean, std on the 0..1 scale.
NORMALIZATION = {
    "bisenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "parsenet": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


class Parser(Protocol):
    """Anything that parses faces: ``parse(images)`` → canonical uint8 label maps.

    ``name`` names the cache folder; ``identity`` (e.g. a weights hash) invalidates cached maps
    made by other weights.
    """

    name: str
    identity: str

    def parse(self, images: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def check_model(model: str) -> None:
    if model not in PARSING_MODELS:
        raise FakeLocatorError(f"unknown face-parsing model {model!r}; choose one of {', '.join(PARSING_MODELS)}")


def facexlib_weights_dir() -> Path | None:
    """``<site-packages>/facexlib/weights``, where facexlib keeps what it downloaded (found without importing it)."""
    spec = importlib.util.find_spec("facexlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


def find_parsing_weights(model: str, explicit: str | os.PathLike | None = None) -> tuple[Path | None, list[str]]:
    """(the weights file, or None; the places looked at), in this order: ``explicit``,
    ``$FAKELOCATOR_PARSING_WEIGHTS``, facexlib's weights folder. An explicit path or environment
    variable that names no file is an error, not a fall-through. ``mesh`` needs none; ``auto``
    looks for BiSeNet's."""
    check_model(model)
    if model == "mesh":
        return None, []
    model = "bisenet" if model == "auto" else model
    looked = []
    for origin, value in (("--parsing-weights", explicit), (WEIGHTS_ENV, os.environ.get(WEIGHTS_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise FakeLocatorError(f"face-parsing weights {path} (from {origin}): no such file")
            return path, [str(path)]
        looked.append(f"{origin} (not set)")
    folder = facexlib_weights_dir()
    if folder is not None:
        candidate = folder / WEIGHTS_FILES[model]
        looked.append(str(candidate))
        if candidate.is_file():
            return candidate, looked
    return None, looked


def missing_weights_message(model: str, looked: list[str], needed: int, example: str) -> str:
    return (
        f"face-parsing attention needs the {model} weights for {needed} training image(s) without a cached "
        f"parsing (e.g. {example}), and none were found (looked at: {'; '.join(looked)}). Obtain "
        f"{WEIGHTS_FILES[model]} ({WEIGHTS_URLS[model]}), then pass --parsing-weights PATH or set "
        f"{WEIGHTS_ENV}=PATH; nothing is downloaded. To train without attention: --attention off"
    )


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def resolve_model(model: str, weights: Path | None) -> str:
    """The parser ``auto`` stands for: BiSeNet when its weights were found, else the mesh."""
    check_model(model)
    if model == "auto":
        return "bisenet" if weights is not None else "mesh"
    return model


def build_network(model: str, *, size: int = INPUT_SIDE):
    """facexlib's parsing network with random weights (no download: the classes only build layers)."""
    if model not in WEIGHTED_MODELS:
        raise FakeLocatorError(f"{model!r} is not a facexlib parsing network; choose one of {', '.join(WEIGHTED_MODELS)}")
    if importlib.util.find_spec("facexlib") is None:
        raise FakeLocatorError(
            f"the {model} parser needs facexlib: pip install --no-deps facexlib==0.3.0 (without its opencv-python, "
            "which would clash with opencv-python-headless); or use the shipped face mesh: --parsing-model mesh"
        )
    if model == "bisenet":
        from facexlib.parsing.bisenet import BiSeNet

        return BiSeNet(num_class=19)
    from facexlib.parsing.parsenet import ParseNet

    return ParseNet(in_size=size, out_size=size, parsing_ch=19)


def load_parsing_state(path: Path) -> dict:
    """The state dict in a facexlib ``.pth`` (plain, or under ``params``/``state_dict``; ``module.`` stripped)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise FakeLocatorError(f"face-parsing weights {path}: cannot be read ({e})") from None
    for key in ("params", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise FakeLocatorError(f"face-parsing weights {path}: not a state dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


class FaceParser:
    """A facexlib parsing network on a device.

    Args:
        model: ``bisenet`` or ``parsenet`` (they number their labels differently; the output is
            canonical either way).
        network: the ``torch.nn.Module``; ``FaceParser.from_weights`` builds and loads one.
        identity: what distinguishes these weights in the cache (``from_weights``: the file's hash).
        device: where to run it.
        size: the network's square input side.
        batch_size: images per forward pass.
    """

    def __init__(self, model: str, network, *, identity: str, device: str = "cpu", size: int = INPUT_SIDE, batch_size: int = 8):
        import torch

        if model not in WEIGHTED_MODELS:
            raise FakeLocatorError(f"FaceParser runs facexlib's {', '.join(WEIGHTED_MODELS)}, not {model!r}")
        self.name = model
        self.identity = identity
        self.size = size
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()  # eval: batch-norm statistics, and batches of 1 work
        mean, std = NORMALIZATION[model]
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self._lut = CANONICAL_LUT[model]

    @classmethod
    def from_weights(cls, model: str, path: str | os.PathLike, *, device: str = "cpu", batch_size: int = 8) -> "FaceParser":
        """Build ``model`` and load the weights file at ``path`` (strictly: every tensor must match)."""
        path = Path(path)
        network = build_network(model)
        state = load_parsing_state(path)
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise FakeLocatorError(
                f"face-parsing weights {path}: do not fit facexlib's {model} ({first}); "
                f"expected {WEIGHTS_FILES[model]}"
            ) from None
        return cls(model, network, identity=f"{model}:{file_digest(path)}", device=device, batch_size=batch_size)

    def parse(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 RGB (H, W, 3) images → canonical uint8 (size, size) label maps (images are stretched to the square)."""
        import cv2
        import torch

        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            x = np.stack([cv2.resize(im, (self.size, self.size), interpolation=cv2.INTER_LINEAR) for im in chunk])
            t = torch.from_numpy(x).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)  # (n, 3, s, s)
            with torch.no_grad():
                logits = self.network((t - self._mean) / self._std)[0]  # (n, 19, s, s)
            labels = logits.argmax(1).to(torch.uint8).cpu().numpy()
            out.extend(self._lut[lab] for lab in labels)
        return out
