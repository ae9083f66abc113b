"""Manipulation families for native-scale training: ``FAMILIES[name].make(real, rng) -> candidate``.

Each family re-synthesizes a whole image at its own pixel scale (no resize to a working
resolution); the caller blends the candidate into the real through a soft mask
(``shapes.make_mask``) or uses it whole, and takes Eq. 7 of (real, blended) as the ground truth.
Groups (``Family.group``):

- ``gan_decoder``: a fresh random GAN-like encoder–decoder per sample (``gan``), by upsampling
  layer: ``gan_tconv``, ``gan_pixelshuffle``, ``gan_resize_conv``, ``gan_mixed``;
- ``resample``: a downscaled copy enlarged back (``upscale_nearest`` … ``upscale_lanczos``,
  ``upscale_chain`` for a ×2 ×2 progressive enlargement, ``upscale_sharpened``), factor 2×, 3×,
  4× or non-integer;
- ``self_blend``: the image with itself changed (``selfblend``): ``selfblend_resample``,
  ``selfblend_colour``, ``selfblend_jpeg``, ``selfblend_blur``, ``selfblend_smooth``,
  ``selfblend_warp``, ``selfblend_sbi``;
- ``fingerprint``: ``fingerprint_periodic``, a brightness-modulated periodic pattern added to the
  image (the spectral peaks of a generator without its other changes);
- ``repo_decoder``: the repository's decoders of ``decoder.py`` (Sec. III families incl.
  unpooling), here run at the image's own pixels: ``repo_decoder``, ``repo_unpool`` (unpooling
  layers only), and ``repo_latent_edit`` with an attribute edit (``edits.py``) of the latent image.

Every ``make`` is deterministic given ``rng`` (numpy draws only; torch runs fixed weights), returns
uint8 (H, W, 3) of the input's size, and for a non-flat input differs from it. ``HELD_OUT`` names
the families recommended to keep out of training for a leave-families-out evaluation.
Torch work uses small tensors under ``torch.no_grad``; the caller sets ``torch.set_num_threads(1)``
in its workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from fakelocator.training.synth import gan, selfblend
from fakelocator.training.synth.config import SynthConfig
from fakelocator.training.synth.sampling import log_uniform

GROUPS = ("gan_decoder", "resample", "self_blend", "fingerprint", "repo_decoder")


@dataclass(frozen=True)
class Family:
    """One manipulation family: ``make(real, rng)`` → a re-synthesized candidate of the same size."""

    name: str
    group: str  # one of GROUPS
    fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    description: str
    weight: float = 1.0  # suggested sampling weight within training

    def make(self, real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not isinstance(real, np.ndarray) or real.dtype != np.uint8 or real.ndim != 3 or real.shape[2] != 3:
            got = f"{real.dtype} {real.shape}" if isinstance(real, np.ndarray) else type(real).__name__
            raise ValueError(f"family {self.name}: real must be a uint8 (H, W, 3) RGB array, got {got}")
        if min(real.shape[:2]) < 16:
            raise ValueError(f"family {self.name}: image {real.shape[1]}x{real.shape[0]} is too small (at least 16x16)")
        out = self.fn(np.ascontiguousarray(real), rng)
        if out.shape != real.shape or out.dtype != np.uint8:  # a bug in a family, not a user error
            raise RuntimeError(f"family {self.name} returned {out.dtype} {out.shape} for {real.shape}")
        return out


# --- (b) plain upsampling of a downscaled copy -------------------------------------------------

_DOWN = ("area", "linear", "cubic", "nearest")


def _factor(rng) -> float:
    """2×, 3×, 4× (60 %) or a non-integer factor in 1.3–4 (40 %)."""
    if rng.random() < 0.6:
        return float((2, 3, 4)[int(rng.integers(3))])
    return log_uniform(rng, 1.3, 4.0)


def _upscale(real: np.ndarray, rng: np.random.Generator, up: str) -> np.ndarray:
    import cv2

    h, w = real.shape[:2]
    f = _factor(rng)
    down = _DOWN[int(rng.choice(4, p=(0.5, 0.2, 0.15, 0.15)))]
    small = cv2.resize(real, (max(4, round(w / f)), max(4, round(h / f))), interpolation=selfblend._flag(down))
    return cv2.resize(small, (w, h), interpolation=selfblend._flag(up))


def _upscale_chain(real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down 4× (area), then two ×2 steps with a drawn interpolation each (progressive upsampling)."""
    import cv2

    h, w = real.shape[:2]
    q = max(4, round(w / 4)), max(4, round(h / 4))
    x = cv2.resize(real, q, interpolation=cv2.INTER_AREA)
    for size in ((2 * q[0], 2 * q[1]), (w, h)):
        x = cv2.resize(x, size, interpolation=selfblend._flag(("nearest", "linear", "cubic")[int(rng.integers(3))]))
    return x


def _upscale_sharpened(real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bicubic or Lanczos enlargement of a 2–4× smaller copy, then an unsharp mask: the crisp
    edges, halos and flat texture of a sharpened or "super-resolved" upscale."""
    import cv2

    up = _upscale(real, rng, ("cubic", "lanczos")[int(rng.integers(2))])
    sigma, amount = rng.uniform(0.8, 2.0), rng.uniform(0.5, 1.8)
    x = up.astype(np.float32)
    return np.clip(np.rint(x + amount * (x - cv2.GaussianBlur(x, (0, 0), sigma))), 0, 255).astype(np.uint8)


# --- a generator's additive fingerprint --------------------------------------------------------

def _fingerprint(real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A periodic fingerprint added to the image: a random zero-mean tile of period 2, 4 or 8 (per
    axis), the peaks a GAN's upsampling leaves in the spectrum, its amplitude (1–6 grey levels)
    modulated by the local brightness the way a multiplicative layer would."""
    h, w = real.shape[:2]
    py, px = (int(2 ** rng.integers(1, 4)) for _ in range(2))
    tile = rng.normal(size=(py, px, 3)) * 0.35 + rng.normal(size=(py, px, 1))
    tile -= tile.mean(axis=(0, 1))
    tile /= max(float(np.abs(tile).max()), 1e-6)
    pattern = np.tile(tile.astype(np.float32), (-(-h // py), -(-w // px), 1))[:h, :w]
    x = real.astype(np.float32)
    gain = 0.5 + x.mean(axis=2, keepdims=True) / 255.0  # brighter pixels carry more of it
    amp = log_uniform(rng, 1.0, 6.0)
    return np.clip(np.rint(x + np.float32(amp) * gain * pattern), 0, 255).astype(np.uint8)


# --- (d) the repository's decoders at native scale ---------------------------------------------

_REPO_CFG = SynthConfig()
_UNPOOL_CFG = SynthConfig(family_weights={"unpool": 1.0}, decoder_weights={"single": 0.6, "stack": 0.4})


def _repo_decoder(real: np.ndarray, rng: np.random.Generator, edit: bool, cfg: SynthConfig = _REPO_CFG) -> np.ndarray:
    import cv2

    from fakelocator.training.synth.decoder import draw_spec, run_decoder
    from fakelocator.training.synth.edits import apply_edit
    from fakelocator.training.synth.sampling import choice

    spec = draw_spec(rng, cfg)
    h, w = real.shape[:2]
    unit = 1 << spec.depth
    ph, pw = (-h) % unit, (-w) % unit
    x = real.astype(np.float32) / np.float32(255.0)
    if ph or pw:
        x = cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)
    edit_fn = None
    if edit:
        kind = choice(rng, _REPO_CFG.edit_weights)
        strength = log_uniform(rng, 0.03, 0.12)

        def edit_fn(latent):
            return apply_edit(latent, np.ones(latent.shape[:2], np.float32), kind, strength, rng)[0]

    out, _ = run_decoder(x, spec, rng, edit_fn)
    rendered = out[:h, :w] * np.float32(255.0)
    if edit:
        return np.clip(np.rint(rendered), 0, 255).astype(np.uint8)
    return gan.calibrate(real, rendered, log_uniform(rng, 2.0 / 255, 15.0 / 255))


def _gan(layers):
    return partial(gan.gan_resynthesize, layers=layers)


_SPECS = (
    ("gan_tconv", "gan_decoder", _gan(("tconv",)), "random GAN decoder, transposed-convolution blocks (kernel 2/3/4)"),
    ("gan_pixelshuffle", "gan_decoder", _gan(("pixelshuffle",)), "random GAN decoder, conv + pixel-shuffle blocks"),
    ("gan_resize_conv", "gan_decoder", _gan(("resize_conv",)), "random GAN decoder, nearest/bilinear upsample + conv blocks"),
    ("gan_mixed", "gan_decoder", _gan(gan.UP_LAYERS), "random GAN decoder, a block type drawn per block"),
    ("upscale_nearest", "resample", partial(_upscale, up="nearest"), "downscaled copy enlarged, nearest"),
    ("upscale_bilinear", "resample", partial(_upscale, up="linear"), "downscaled copy enlarged, bilinear"),
    ("upscale_bicubic", "resample", partial(_upscale, up="cubic"), "downscaled copy enlarged, bicubic"),
    ("upscale_lanczos", "resample", partial(_upscale, up="lanczos"), "downscaled copy enlarged, Lanczos-4"),
    ("upscale_chain", "resample", _upscale_chain, "4× down, two ×2 enlargements of drawn kinds"),
    ("upscale_sharpened", "resample", _upscale_sharpened, "bicubic/Lanczos enlargement, then unsharp mask"),
    ("fingerprint_periodic", "fingerprint", _fingerprint, "additive periodic pattern (period 2/4/8), brightness-modulated"),
    ("selfblend_resample", "self_blend", selfblend.resample, "itself down-up resampled by 1.15–2×"),
    ("selfblend_colour", "self_blend", selfblend.colour_shift, "itself colour-shifted (hue, saturation, contrast, gains)"),
    ("selfblend_jpeg", "self_blend", selfblend.reencode, "itself re-encoded as JPEG at quality 25–85"),
    ("selfblend_blur", "self_blend", selfblend.blur_sharpen, "itself blurred or sharpened"),
    ("selfblend_smooth", "self_blend", selfblend.smooth, "itself smoothed edge-preservingly (bilateral, median)"),
    ("selfblend_warp", "self_blend", selfblend.warp, "itself slightly shifted, scaled, rotated"),
    ("selfblend_sbi", "self_blend", selfblend.sbi, "SBI recipe: colour and frequency change, slight move"),
    ("repo_decoder", "repo_decoder", partial(_repo_decoder, edit=False), "decoder.py decoders (incl. unpooling) at native scale"),
    ("repo_unpool", "repo_decoder", partial(_repo_decoder, edit=False, cfg=_UNPOOL_CFG),
     "decoder.py unpooling decoders (max-unpool or fixed phase, zero fill or conv) at native scale"),
    ("repo_latent_edit", "repo_decoder", partial(_repo_decoder, edit=True), "decoder.py decoder with an attribute edit of its latent"),
)

#: Every family by name.
FAMILIES: dict[str, Family] = {
    name: Family(name, group, fn, desc, weight=0.5 if group == "repo_decoder" else 1.0)  # repo: slower, overlaps gan
    for name, group, fn, desc in _SPECS
}

#: Families to keep out of training for a leave-families-out evaluation: three mechanisms unlike
#: the rest of their groups — a decoder whose upsampling is a learned sub-pixel convolution,
#: a self-blend whose trace is compression (not resampling or colour), and a Lanczos enlargement.
HELD_OUT: tuple[str, ...] = ("gan_pixelshuffle", "selfblend_jpeg", "upscale_lanczos")


def blend(real: np.ndarray, candidate: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``real + mask · (candidate − real)``, rounded to uint8: the skip-connection repair that puts a
    re-synthesized candidate into the real through a soft ``mask`` (H, W) in [0, 1]. Where the mask
    is 0 the pixels are exactly the real ones, so Eq. 7 of (real, result) is 0 there."""
    if candidate.shape != real.shape or mask.shape != real.shape[:2]:
        raise ValueError(f"blend: real {real.shape}, candidate {candidate.shape} and mask {mask.shape} differ in size")
    base = real.astype(np.float32)
    out = base + mask[..., None].astype(np.float32) * (candidate.astype(np.float32) - base)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def sample_family(rng: np.random.Generator, families: dict[str, Family] | None = None) -> Family:
    """A family drawn from ``families`` (default ``FAMILIES``) with probability proportional to its
    ``weight`` (one draw from ``rng``)."""
    table = FAMILIES if families is None else families
    if not table:
        raise ValueError("sample_family: no families to draw from")
    names = sorted(table)  # a canonical order: the draw does not depend on the dict's order
    p = np.asarray([table[n].weight for n in names], np.float64)
    return table[names[int(rng.choice(len(names), p=p / p.sum()))]]


def training_families(held_out: tuple[str, ...] = HELD_OUT) -> dict[str, Family]:
    """``FAMILIES`` without ``held_out`` (names that are not families are an error)."""
    unknown = [n for n in held_out if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    return {n: f for n, f in FAMILIES.items() if n not in held_out}


def lookup(name: str) -> Family:
    """A family by name: ``FAMILIES`` or the trained generators' (``trained.TRAINED_FAMILIES``)."""
    if name in FAMILIES:
        return FAMILIES[name]
    from fakelocator.training.synth.trained import TRAINED_FAMILIES

    if name in TRAINED_FAMILIES:
        return TRAINED_FAMILIES[name]
    raise ValueError(f"unknown family {name!r}; known: {', '.join([*FAMILIES, *TRAINED_FAMILIES])}")
