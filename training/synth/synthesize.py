"""One (real, fake) pair in memory: view → region → GAN-like re-synthesis → soft blend.

The scale design point. The model sees every image stretched to ``model_input``² (224² by default,
``fakelocator.contract``). An upsampling texture at the pixel scale of a 1024-px image is averaged
away by that resize, so the decoder does not work at the image's resolution: like a GAN that makes a
256² face which is then pasted into a large photo, it works at ``gan_scale`` × the model's resolution
(0.5–1.4 by default: its ×2 textures have a period of about 1.4–4 model-input pixels), and only the
*difference* it makes is enlarged to the image's resolution::

    g     = min(1, gan_scale · model_input / sqrt(H · W))     # image pixels → decoder pixels
    X0    = resize(crop, g)                                    # what the GAN sees
    Y0    = decoder(X0)                                        # upsampling texture, edits
    R     = crop + up(Y0 − X0) − (1 − restore) · (crop − up(X0))
    fake  = real + mask · (R − real)                           # the skip-connection repair

``restore`` is the fraction of the detail finer than the decoder's resolution that the repair puts
back (most of it for partial manipulations, little for entire syntheses). With ``restore = 1`` the
ground truth (Eq. 7) is ``mask · |up(Y0 − X0)|``: it lives at the decoder's scale, which a map at
the model's resolution can follow, instead of being pixel noise at the image's scale.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.synth.config import SynthConfig
from fakelocator.training.synth.decoder import draw_spec, run_decoder
from fakelocator.training.synth.edits import apply_edit
from fakelocator.training.synth.photos import Photo, read_rgb
from fakelocator.training.synth.face_masks import photo_labels, view_labels
from fakelocator.training.synth.regions import FACE_PARTS, make_region
from fakelocator.training.synth.sampling import choice, log_uniform
from fakelocator.training.synth.views import make_view

MAX_ATTEMPTS = 5
SMALL_FACE_PARTS = ("eyes", "mouth", "nose")


class Sample(NamedTuple):
    """One synthesized item. ``fake`` is None for a real-only item; for ``entire`` it is the entire
    synthesis (ground truth all ones) and ``real`` the view it was made from."""

    real: np.ndarray  # uint8 (H, W, 3) RGB
    fake: np.ndarray | None  # uint8 (H, W, 3) RGB, same size
    kind: str  # "partial" | "entire" | "real"
    property: str  # region kind, "entire", or "" for real
    info: dict  # how it was made, for the manifest


_PHOTO_CACHE: dict[str, np.ndarray] = {}
_PHOTO_CACHE_SIZE = 64


def load_photo(photo: Photo) -> np.ndarray:
    """The photo's pixels, cached per process (a run draws from the same few photos many times)."""
    image = _PHOTO_CACHE.get(photo.path)
    if image is None:
        image = read_rgb(photo.path)
        if len(_PHOTO_CACHE) >= _PHOTO_CACHE_SIZE:
            _PHOTO_CACHE.pop(next(iter(_PHOTO_CACHE)))
        _PHOTO_CACHE[photo.path] = image
    return image


def _expand(box, h, w, rng) -> tuple[int, int, int, int]:
    """The region's support box plus a random margin: the patch the GAN re-renders."""
    x0, y0, x1, y1 = box
    m = rng.uniform(0.1, 0.4)
    dx, dy = int(m * (x1 - x0)) + 2, int(m * (y1 - y0)) + 2
    return max(0, x0 - dx), max(0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)


def resynthesize(real: np.ndarray, mask: np.ndarray | None, box: tuple[int, int, int, int],
                 rng: np.random.Generator, cfg: SynthConfig, *, entire: bool, boost: float = 1.0):
    """Re-render ``box`` of ``real`` with a GAN-like decoder and blend it back through ``mask``.

    ``mask`` (H, W) in [0, 1], or None for an entire synthesis (the whole box is replaced).
    ``boost`` > 1 strengthens the manipulation (used when a draw came out too faint).
    Returns the fake uint8 (H, W, 3) and a dict describing the draw.
    """
    import cv2

    H, W = real.shape[:2]
    x0, y0, x1, y1 = box
    crop = real[y0:y1, x0:x1].astype(np.float32) / np.float32(255.0)  # (hb, wb, 3)
    hb, wb = crop.shape[:2]

    gan_scale = log_uniform(rng, *cfg.gan_scale)
    g = min(1.0, gan_scale * cfg.model_input / math.sqrt(H * W))
    spec = draw_spec(rng, cfg, strength_boost=boost)
    unit = 1 << spec.depth
    hw = max(4 * unit, int(round(hb * g / unit)) * unit)
    ww = max(4 * unit, int(round(wb * g / unit)) * unit)
    shrink = hw * ww < hb * wb
    x_work = cv2.resize(crop, (ww, hw), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    edit_desc = ""
    p_edit = cfg.entire_edit_probability if entire else cfg.edit_probability
    edit_fn = None
    if rng.random() < p_edit or boost > 1.0:
        kind = choice(rng, cfg.edit_weights)
        strength = min(0.5, log_uniform(rng, *cfg.edit_strength) * boost)
        lh, lw = hw // unit, ww // unit
        if mask is None:
            weights = np.ones((lh, lw), np.float32)
        else:
            weights = cv2.resize(mask[y0:y1, x0:x1], (lw, lh), interpolation=cv2.INTER_AREA)

        def edit_fn(latent):
            nonlocal edit_desc
            edited, edit_desc = apply_edit(latent, weights, kind, strength, rng)
            return edited

    y_work, upsampler = run_decoder(x_work, spec, rng, edit_fn)

    bicubic = bool(rng.random() < 0.5)
    restore = float(rng.uniform(*(cfg.entire_detail_restore if entire else cfg.detail_restore)))
    if (hw, ww) == (hb, wb):
        up_diff, up_x = y_work - x_work, x_work
    else:
        interp = cv2.INTER_CUBIC if bicubic else cv2.INTER_LINEAR
        up_diff = cv2.resize(y_work - x_work, (wb, hb), interpolation=interp)
        up_x = cv2.resize(x_work, (wb, hb), interpolation=interp)
    rendered = crop + up_diff - np.float32(1.0 - restore) * (crop - up_x)  # (hb, wb, 3) in ~[0, 1]

    base = real[y0:y1, x0:x1].astype(np.float32)
    delta = rendered * np.float32(255.0) - base
    if mask is not None:
        delta *= mask[y0:y1, x0:x1, None]
    fake = real.copy()
    fake[y0:y1, x0:x1] = np.clip(np.rint(base + delta), 0, 255).astype(np.uint8)
    info = {
        "upsampler": upsampler,
        "encoder": spec.encoder,
        "depth": spec.depth,
        "gan_scale": round(gan_scale, 4),
        "gan_size": f"{ww}x{hw}",
        "final_upsampler": "none" if (hw, ww) == (hb, wb) else ("bicubic" if bicubic else "bilinear"),
        "retention": ",".join(f"{a:.3f}" for a in spec.retention),
        "detail_restore": round(restore, 4),
        "texture_strength": round(spec.strength, 4),
        "decoder_noise": round(spec.noise, 4),
        "edit": edit_desc,
        "box": f"{x0},{y0},{x1 - x0},{y1 - y0}",
    }
    return fake, info


def synthesize_one(photo: Photo | np.ndarray, rng: np.random.Generator, config: SynthConfig | None = None, *,
                   kind: str | None = None, faces: tuple | None = None) -> Sample:
    """Make one item from a photo: a real view and, unless ``kind`` is ``"real"``, its fake.

    Args:
        photo: a ``Photo`` (its detected faces are used) or a uint8 (H, W, 3) RGB array.
        rng: the item's generator; the result depends on it (and the arguments) only.
        config: the recipe; ``SynthConfig()`` when None.
        kind: ``"partial"``, ``"entire"`` or ``"real"``; drawn from ``config.kind_fractions`` when None.
        faces: (x, y, w, h) face boxes in the photo, overriding ``photo.faces``.

    Returns:
        ``Sample(real, fake, kind, property, info)``.
    """
    cfg = config or SynthConfig()
    if isinstance(photo, Photo):
        image, known_faces = load_photo(photo), photo.faces
    else:
        image, known_faces = np.asarray(photo), ()
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"photo must be a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
    faces = tuple(faces) if faces is not None else tuple(known_faces)
    kind = kind or choice(rng, cfg.kind_fractions)
    if kind not in ("partial", "entire", "real"):
        raise ValueError(f"kind must be partial, entire or real, got {kind!r}")

    region_kind = choice(rng, cfg.region_weights) if kind == "partial" else ""
    prefer_face = 0.0
    if faces and (region_kind in FACE_PARTS or kind == "real") and rng.random() < 0.85:
        prefer_face = 2.0 if region_kind in SMALL_FACE_PARTS else 3.5
    view = make_view(image, faces, rng, cfg, prefer_face=prefer_face)
    real = view.image
    H, W = real.shape[:2]
    info = {
        "width": W, "height": H, "crop": ",".join(str(v) for v in view.crop),
        "flip": int(view.flip), "jitter": view.jitter,
    }
    if kind == "real":
        return Sample(real, None, "real", "", info)
    if kind == "entire":
        fake, made = resynthesize(real, None, (0, 0, W, H), rng, cfg, entire=True)
        info.update(made)
        return Sample(real, fake, "entire", "entire", info)

    labels = None
    if region_kind in FACE_PARTS and view.faces and isinstance(photo, Photo):
        labels = view_labels(photo_labels(photo.sha256 or photo.path, image), view.crop, (H, W), view.flip)
    region = make_region(region_kind, (H, W), rng, cfg, view.faces, labels)
    box = _expand(region.box, H, W, rng)
    x0, y0, x1, y1 = box
    weight = float(region.mask.sum(dtype=np.float64))
    for attempt in range(MAX_ATTEMPTS):
        fake, made = resynthesize(real, region.mask, box, rng, cfg, entire=False, boost=1.0 + 0.5 * attempt)
        gt = partial_manipulation_map(real[y0:y1, x0:x1], fake[y0:y1, x0:x1])
        difference = float((gt * region.mask[y0:y1, x0:x1]).sum(dtype=np.float64) / max(weight, 1.0))
        if difference >= cfg.min_difference:
            break
    info.update(made)
    info.update({
        "face_source": region.face_source,
        "region_fraction": round(region.area_fraction, 4),
        "region_difference": round(difference, 4),
        "attempts": attempt + 1,
    })
    return Sample(real, fake, "partial", region.kind, info)
