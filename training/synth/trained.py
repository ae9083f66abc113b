"""Manipulation families made by TRAINED generators: real upsampling networks, run on the CPU.

Every other family (``families.py``) is a random-weight decoder or a classical resampler. These use
networks that were trained (several adversarially) and ship inside packages reachable here; their
files are fetched once by ``scripts/fetch-training-data`` into a git-ignored cache
(``external_root()``) and are training data only — the runtime never needs them.

A family works the way a face editor does: the window is downscaled by the network's factor (a
drawn interpolation), re-synthesized by the network at full size, and returned as the candidate;
the caller (``stream.make_item``, ``native_set``) pastes it back through a soft region mask and
takes Eq. 7 of (real, result) as the ground truth, exactly as for the other families.

| family | network | upsampling | ~cost, 80→320 px |
|---|---|---|---|
| ``trained_animevideov3`` | Real-ESRGAN realesr-animevideov3 ×2/×3/×4 (ncnn) | conv + PixelShuffle, nearest skip | 0.1 s |
| ``trained_waifu2x`` | waifu2x upconv_7 photo / anime, 5 noise levels (ncnn) | 4 × 4 stride-2 deconvolution | 0.2 s |
| ``trained_esrgan_slim`` | UpscalerJS esrgan-slim ×2/×3/×4/×8 (TF.js → PyTorch) | nearest UpSampling2D + conv | 0.1 s |
| ``trained_realesrgan_x4plus`` | Real-ESRGAN x4plus, GAN-trained on photos (ncnn) | 2 × (nearest ×2 + conv), RRDB | 1.5 s |
| ``trained_realesrgan_anime`` | Real-ESRGAN x4plus-anime, 6 RRDB blocks (ncnn) | as x4plus | 0.6 s |

``TRAINED_HELD_OUT``: the two RRDB networks (one architecture, two trainings) are kept out of the
default model's training; x4plus is its leave-one-generator-out evaluation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.training.synth.families import Family

#: Environment variable naming the cache folder; default ``<checkout>/data/external``.
ENV_ROOT = "FAKELOCATOR_EXTERNAL_DATA"


def external_root() -> Path:
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    import fakelocator

    return Path(fakelocator.__file__).resolve().parent.parent / "data" / "external"


@dataclass(frozen=True)
class NetFile:
    """One network in the cache: ``kind`` ``ncnn`` (``path`` = the ``.param``, the ``.bin`` beside
    it) or ``tfjs`` (``path`` = ``model.json``); paths relative to ``external_root()``."""

    kind: str
    path: str
    scale: int
    input_blob: str = "data"
    output_blob: str = "output"
    pad: int = 0


def _rg(name: str, scale: int) -> NetFile:
    return NetFile("ncnn", f"nets/realesrgan/{name}.param", scale)


def _w2x(style: str, noise: int | None) -> NetFile:
    stem = "scale2.0x_model" if noise is None else f"noise{noise}_scale2.0x_model"
    return NetFile("ncnn", f"nets/waifu2x/models-upconv_7_{style}/{stem}.param", 2, "Input1", "Eltwise4", pad=7)


NETS: dict[str, tuple[NetFile, ...]] = {
    "trained_animevideov3": tuple(_rg(f"realesr-animevideov3-x{s}", s) for s in (2, 3, 4)),
    "trained_waifu2x": tuple(_w2x(style, n) for style in ("photo", "anime_style_art_rgb") for n in (None, 0, 1, 2, 3)),
    "trained_esrgan_slim": tuple(NetFile("tfjs", f"nets/esrgan-slim/x{s}/model.json", s) for s in (2, 3, 4, 8)),
    "trained_realesrgan_x4plus": (_rg("realesrgan-x4plus", 4),),
    "trained_realesrgan_anime": (_rg("realesrgan-x4plus-anime", 4),),
}

_DESCRIPTIONS = {
    "trained_animevideov3": "Real-ESRGAN animevideov3 x2/x3/x4 (trained; conv + pixel shuffle)",
    "trained_waifu2x": "waifu2x upconv_7 photo/anime, noise 0-3 or none (trained; 4x4 stride-2 deconvolution)",
    "trained_esrgan_slim": "UpscalerJS esrgan-slim x2/x3/x4/x8 (trained RDN; nearest upsampling + conv)",
    "trained_realesrgan_x4plus": "Real-ESRGAN x4plus (GAN-trained on photos; RRDB, nearest upsampling + conv)",
    "trained_realesrgan_anime": "Real-ESRGAN x4plus-anime (GAN-trained; 6 RRDB blocks, nearest upsampling + conv)",
}

#: Kept out of the default model's training (leave-one-generator-out row: x4plus).
TRAINED_HELD_OUT: tuple[str, ...] = ("trained_realesrgan_x4plus", "trained_realesrgan_anime")

_LOADED: dict[str, object] = {}  # per process: path → a callable float (h, w, 3) [0,1] → (s·h, s·w, 3)


def load_net(net: NetFile, root: Path | None = None):
    """The network as a callable ``f(image float32 (h, w, 3) in [0, 1]) -> (scale·h, scale·w, 3)``,
    loaded once per process."""
    path = (root or external_root()) / net.path
    key = str(path)
    fn = _LOADED.get(key)
    if fn is not None:
        return fn
    if not path.is_file():
        raise FakeLocatorError(f"trained network {path} not found: run scripts/fetch-training-data "
                               f"(or set {ENV_ROOT} to the folder it filled)")
    if net.kind == "ncnn":
        from fakelocator.training.synth.ncnn_net import NcnnNet, NcnnSpec

        fn = NcnnNet(NcnnSpec(str(path), str(path.with_suffix(".bin")), net.input_blob, net.output_blob, net.scale, net.pad))
    elif net.kind == "tfjs":
        import torch

        from fakelocator.training.synth.tfjs_layers import load_tfjs_layers_model

        module = load_tfjs_layers_model(path)

        def fn(image, module=module):
            with torch.no_grad():
                x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
                return np.clip(module(x)[0].numpy().transpose(1, 2, 0), 0.0, 1.0)
    else:
        raise FakeLocatorError(f"network {net.path}: unknown kind {net.kind!r}")
    _LOADED[key] = fn
    return fn


_DOWN = ("area", "linear", "cubic")


def resynthesize(real: np.ndarray, rng: np.random.Generator, nets: tuple[NetFile, ...]) -> np.ndarray:
    """The window downscaled by a drawn network's factor and re-synthesized by it at full size.

    real: uint8 (H, W, 3) RGB. Returns uint8 (H, W, 3): the network's output cropped to (H, W) (the
    small copy is ceil(H / s) × ceil(W / s), so the output covers the window).
    """
    import cv2

    net = nets[int(rng.integers(len(nets)))]
    down = _DOWN[int(rng.choice(len(_DOWN), p=(0.6, 0.2, 0.2)))]
    h, w = real.shape[:2]
    s = net.scale
    small_size = (max(4, -(-w // s)), max(4, -(-h // s)))
    flag = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[down]
    small = cv2.resize(real, small_size, interpolation=flag).astype(np.float32) / np.float32(255.0)
    out = load_net(net)(small)[:h, :w]
    if out.shape[:2] != (h, w):  # a 4-px floor on a tiny window: cannot happen for >= 16 px at s <= 4
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(out * np.float32(255.0)), 0, 255).astype(np.uint8)


#: Every trained-generator family by name (group ``trained``). Not in ``families.FAMILIES``: they
#: need the fetched cache, so a run names them (``StreamConfig.trained``, ``NativeSetConfig``).
TRAINED_FAMILIES: dict[str, Family] = {
    name: Family(name, "trained", partial(resynthesize, nets=nets), _DESCRIPTIONS[name])
    for name, nets in NETS.items()
}


def available(names=None, root: Path | None = None) -> dict[str, str]:
    """family → "" when all its files are in the cache, else the first missing path."""
    root = root or external_root()
    out = {}
    for name in names or TRAINED_FAMILIES:
        missing = [n.path for n in NETS[name] if not (root / n.path).is_file()]
        out[name] = str(root / missing[0]) if missing else ""
    return out
