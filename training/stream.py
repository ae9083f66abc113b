"""Training data that does not run out: (image, map, label) crops synthesized on the fly.

Every item is made from ``numpy.random.default_rng([seed, epoch, index])`` alone, in whichever
worker process asks for it, so an epoch is a fresh draw (the stream never repeats) and the data of
a run depend on its seed only — not on the number of loader workers or threads (every synthesis
call runs single-threaded, ``single_threaded``).

One item, at the image's **native scale** (the model is trained for ``native`` analysis,
``fakelocator.tiling``: it never sees a resized image, so neither does its training data):

1. a real source: a bundled photo (``training/synth/photos.py``; randomly flipped, and shrunk by
   area averaging at most — an enlarged photo would carry an interpolation trace and be a fake with
   the label "real") or a procedural texture made without any interpolation; a window of
   ``1.25 × crop`` pixels is cut from it;
2. with probability ``1 − p_real``, a manipulation: a family (``training/synth/families.py``:
   GAN-like random decoders, upsamplers, self-blending…) re-synthesizes the window, and a region
   shape (ellipse, blob, face part, stroke, rectangle, or the whole image) blends it in through a
   soft mask; the ground truth is Eq. 7 (``groundtruth.partial_manipulation_map``) of fake and real,
   all ones for a whole-image synthesis (the paper's rule for entire syntheses);
3. post-processing (JPEG 60–95, mild resize, noise), drawn the same way for reals and fakes so
   that "processed" never means "fake";
4. a ``crop`` × ``crop`` crop — for a partial edit, centred near the region most of the time — with
   mirrored padding when the window came out smaller (the tile rule of the runtime).

The training target is Eq. 7, smoothed by a Gaussian of ``gt_sigma`` pixels (the difference of a
resampled texture flickers from pixel to pixel inside the region; the region is what a user needs
lit), scaled by ``1 / gt_scale`` and clipped to [0, 1]: Eq. 7 is the
difference over 255, so an edit of 10 grey levels is 0.04, and a map trained to reproduce such
values is dim everywhere. Scaled, the map is bright where the image was changed by at least
``gt_scale × 255`` levels (COSS, pixel AUC and F1 read the same region; only PSNR against Eq. 7
itself prefers the unscaled values). The crop's label is "fake" when enough of it was changed
(``label_area`` of its pixels at ``label_level`` or more of the target).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.tiling import normalize_tiles, pad_to
from fakelocator.training.synth.generate import single_threaded
from fakelocator.training.synth.sampling import choice


@dataclass(frozen=True)
class StreamConfig:
    """How training crops are synthesized (saved with the training config).

    Args:
        crop: side of the square training crop; None = the contract's tile (network input) size.
        p_real: share of items left real.
        p_texture: share of real sources that are procedural textures instead of photos.
        max_shrink: photos are shrunk by a random factor in [1, max_shrink] (area averaging) first.
        families: manipulation families to draw from (names in ``families.FAMILIES``); empty = all
            but ``exclude``.
        exclude: families never used (held out of training for a leave-families-out evaluation).
        shapes: region shapes and their weights (``shapes.SHAPES`` when empty).
        p_post: probability of post-processing an item (reals and fakes alike).
        p_region_crop: for partial edits, the probability that the crop is centred near the region
            (otherwise anywhere: the crop may miss the region and then is labelled real).
        gt_scale: Eq. 7 value that maps to a target of 1 (see the module).
        gt_sigma: Gaussian smoothing of Eq. 7 before scaling, in pixels; 0 = none.
        label_level, label_area: a crop is "fake" when at least ``label_area`` of its pixels reach
            ``label_level`` in the target (or it is a whole-image synthesis).
        photos: extra folders of real photos (besides the bundled ones).
        trained: trained-generator families (``synth/trained.py``; their networks must have been
            fetched by ``scripts/fetch-training-data``) added to the draw.
        p_trained: when ``trained`` is set, the share of manipulations drawn from them (the rest
            from ``families``).
        p_blur: probability of a Gaussian blur (σ 0.2–1.5 px) of an item after post-processing,
            reals and fakes alike (CNNDetection's augmentation; 0.1 was its best rate).
    """

    crop: int | None = None
    p_real: float = 0.4
    p_texture: float = 0.15
    max_shrink: float = 2.5
    families: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    shapes: dict[str, float] = field(default_factory=dict)
    p_post: float = 0.6
    p_region_crop: float = 0.85
    gt_scale: float = 0.04
    gt_sigma: float = 1.5
    label_level: float = 0.5
    label_area: float = 0.004
    photos: tuple[str, ...] = ()
    trained: tuple[str, ...] = ()
    p_trained: float = 0.5
    p_blur: float = 0.0

    def __post_init__(self):
        for name in ("families", "exclude", "photos", "trained"):
            v = getattr(self, name)
            object.__setattr__(self, name, (v,) if isinstance(v, str) else tuple(str(x) for x in v))
        object.__setattr__(self, "shapes", {str(k): float(v) for k, v in dict(self.shapes).items()})
        problems = []
        for name in ("p_real", "p_texture", "p_post", "p_region_crop", "label_area", "p_trained", "p_blur"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.crop is not None and not (isinstance(self.crop, int) and self.crop >= 16 and self.crop % 16 == 0):
            problems.append(f"crop must be a multiple of 16, got {self.crop!r}")
        if not self.max_shrink >= 1.0:
            problems.append(f"max_shrink must be >= 1, got {self.max_shrink}")
        if not 0.0 < self.gt_scale <= 1.0:
            problems.append(f"gt_scale must be in (0, 1], got {self.gt_scale}")
        if problems:
            raise FakeLocatorError("invalid stream config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "StreamConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise FakeLocatorError(f"stream config has unknown fields {sorted(unknown)}")
        return cls(**d)


@dataclass
class Item:
    """One synthesized crop before normalization."""

    image: np.ndarray  # uint8 (crop, crop, 3) RGB
    gt: np.ndarray  # float32 (crop, crop): Eq. 7, or ones for a whole-image synthesis
    target: np.ndarray  # float32 (crop, crop) in [0, 1]: the training target
    label: int
    family: str  # "" for a real item
    shape: str  # region shape, "" for a real item


class Recipe:
    """The families, shapes, post-processing and real sources an item is drawn from."""

    def __init__(self, config: StreamConfig):
        from fakelocator.training.synth import families as fam
        from fakelocator.training.synth import post, shapes, textures
        from fakelocator.training.synth.photos import collect_photos

        self.config = config
        names = config.families or tuple(n for n in fam.FAMILIES if n not in config.exclude)
        unknown = [n for n in names + config.exclude if n not in fam.FAMILIES]
        if unknown:
            raise FakeLocatorError(f"unknown synthesis families {unknown}; known: {', '.join(fam.FAMILIES)}")
        names = tuple(n for n in names if n not in config.exclude)
        if not names:
            raise FakeLocatorError("no synthesis family left to train on")
        self.families = {n: fam.FAMILIES[n] for n in names}
        self.trained = {}
        if config.trained:
            from fakelocator.training.synth.trained import TRAINED_FAMILIES, available

            unknown = [n for n in config.trained if n not in TRAINED_FAMILIES]
            if unknown:
                raise FakeLocatorError(f"unknown trained-generator families {unknown}; known: {', '.join(TRAINED_FAMILIES)}")
            missing = {n: p for n, p in available(config.trained).items() if p}
            if missing:
                raise FakeLocatorError(f"trained-generator families need their networks: {missing} not found "
                                       "(run scripts/fetch-training-data)")
            self.trained = {n: TRAINED_FAMILIES[n] for n in config.trained}
        self.photos, _ = collect_photos(config.photos)
        if not self.photos:
            raise FakeLocatorError("no real photos found (the bundled ones need scikit-image, matplotlib, scikit-learn)")
        self.shapes = config.shapes or dict(shapes.SHAPES)
        self.make_mask = shapes.make_mask
        self.postprocess = post.postprocess
        self.texture = textures.procedural_texture


def _source(recipe: Recipe, side: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """A real (side', side', 3) RGB window (side' <= side when the photo is smaller) and its face boxes."""
    import cv2

    from fakelocator.training.synth.synthesize import load_photo

    cfg = recipe.config
    if rng.random() < cfg.p_texture:
        return recipe.texture((side, side), rng), ()
    photo = recipe.photos[int(rng.integers(len(recipe.photos)))]
    image = load_photo(photo)
    faces = tuple(getattr(photo, "faces", ()) or ())
    h, w = image.shape[:2]
    # shrink by area averaging (never enlarge), keeping at least one window where possible
    limit = max(1.0, min(h, w) / side)
    f = float(np.exp(rng.uniform(0.0, np.log(min(cfg.max_shrink, limit)))) if limit > 1.0 else 1.0)
    if f > 1.01:
        image = cv2.resize(image, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
        faces = tuple((x / f, y / f, bw / f, bh / f) for x, y, bw, bh in faces)
        h, w = image.shape[:2]
    if faces and rng.random() < 0.5:  # centre the window on a face now and then: face parts need one
        x, y, bw, bh = faces[int(rng.integers(len(faces)))]
        y0 = int(np.clip(y + bh / 2 - side / 2 + rng.uniform(-0.2, 0.2) * side, 0, max(0, h - side)))
        x0 = int(np.clip(x + bw / 2 - side / 2 + rng.uniform(-0.2, 0.2) * side, 0, max(0, w - side)))
    else:
        y0, x0 = int(rng.integers(0, max(1, h - side + 1))), int(rng.integers(0, max(1, w - side + 1)))
    window = image[y0:y0 + side, x0:x0 + side]
    faces = tuple((x - x0, y - y0, bw, bh) for x, y, bw, bh in faces
                  if x - x0 > -bw / 2 and y - y0 > -bh / 2 and x - x0 + bw / 2 < window.shape[1] and y - y0 + bh / 2 < window.shape[0])
    if rng.random() < 0.5:
        window = window[:, ::-1]
        faces = tuple((window.shape[1] - x - bw, y, bw, bh) for x, y, bw, bh in faces)
    return np.ascontiguousarray(window), tuple(tuple(int(round(v)) for v in b) for b in faces)


def make_item(recipe: Recipe, crop: int, rng: np.random.Generator) -> Item:
    """One training crop (see the module docstring for the steps)."""
    from fakelocator.training.groundtruth import partial_manipulation_map

    cfg = recipe.config
    side = int(round(crop * 1.25))
    real, faces = _source(recipe, side, rng)
    family = shape = ""
    whole = False
    if rng.random() < cfg.p_real:
        image, gt, mask = real, np.zeros(real.shape[:2], np.float32), None
    else:
        # the extra draw only when trained families are named: older recipes keep their exact stream
        pool = recipe.trained if recipe.trained and rng.random() < cfg.p_trained else recipe.families
        family = choice(rng, {n: 1.0 for n in pool})
        candidate = pool[family].make(real, rng)
        shape = choice(rng, recipe.shapes)
        mask = recipe.make_mask(shape, real.shape[:2], rng, faces=faces).astype(np.float32)
        whole = shape == "whole"
        blended = real.astype(np.float32) + mask[..., None] * (candidate.astype(np.float32) - real)
        image = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        gt = np.ones(real.shape[:2], np.float32) if whole else partial_manipulation_map(real, image)
    if rng.random() < cfg.p_post:
        image, gt = recipe.postprocess(image, gt, rng)
        if mask is not None and mask.shape != gt.shape:
            import cv2

            mask = cv2.resize(mask, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    if cfg.p_blur > 0 and rng.random() < cfg.p_blur:  # drawn only when asked: older recipes keep their stream
        import cv2

        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.2, 1.5)), borderType=cv2.BORDER_REFLECT)
    h, w = image.shape[:2]
    if mask is not None and not whole and rng.random() < cfg.p_region_crop and mask.max() > 0.5:
        ys, xs = np.nonzero(mask > 0.5)
        k = int(rng.integers(len(ys)))
        y0 = int(np.clip(ys[k] - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, max(0, h - crop)))
        x0 = int(np.clip(xs[k] - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, max(0, w - crop)))
    else:
        y0, x0 = int(rng.integers(0, max(1, h - crop + 1))), int(rng.integers(0, max(1, w - crop + 1)))
    image, gt = (np.ascontiguousarray(pad_to(a, crop, crop)[y0:y0 + crop, x0:x0 + crop]) for a in (image, gt))
    target = make_target(gt, cfg)
    label = int(whole or (family != "" and float((target >= cfg.label_level).mean()) >= cfg.label_area))
    return Item(image, gt.astype(np.float32), target, label, family if label else "", shape if label else "")


def make_target(gt: np.ndarray, cfg: StreamConfig) -> np.ndarray:
    """Eq. 7 (H, W) → the training target (H, W) float32 in [0, 1] (see the module)."""
    import cv2

    g = np.asarray(gt, np.float32)
    if cfg.gt_sigma > 0 and not (g.min() == g.max()):
        g = cv2.GaussianBlur(g, (0, 0), cfg.gt_sigma, borderType=cv2.BORDER_REFLECT)
    return np.clip(g / np.float32(cfg.gt_scale), 0.0, 1.0).astype(np.float32)


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class SynthStream:
    """A map-style dataset over the endless stream: ``len`` items per epoch, item ``i`` of epoch ``e``
    made from ``(seed, e, i)`` alone (``set_epoch`` moves to a fresh draw)."""

    def __init__(self, config: StreamConfig, preprocessing: Preprocessing, *, length: int, seed: int = 0,
                 recipe: Recipe | None = None, fixed_epoch: int | None = None):
        self.config = config
        self.preprocessing = preprocessing
        self.crop = config.crop or preprocessing.height
        if preprocessing.height != preprocessing.width:
            raise FakeLocatorError("the stream makes square crops; the contract's tile is not square")
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = 0 if fixed_epoch is None else fixed_epoch
        self.fixed = fixed_epoch is not None
        self.recipe = recipe or Recipe(config)

    def set_epoch(self, epoch: int) -> None:
        if not self.fixed:
            self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def item(self, index: int) -> Item:
        with single_threaded():
            return make_item(self.recipe, self.crop, item_rng(self.seed, self.epoch, index))

    def __getitem__(self, index: int) -> dict:
        import torch

        it = self.item(index)
        pre = self.preprocessing
        rgb = it.image if pre.color_order == "RGB" else it.image[:, :, ::-1]
        x = normalize_tiles(rgb[None], pre.mean, pre.std)[0]  # (3, crop, crop) in the contract's order
        return {
            "image": torch.from_numpy(x),
            "map": torch.from_numpy(it.target[None]),
            "label": torch.tensor(float(it.label), dtype=torch.float32),
            "attention": torch.ones((1, self.crop, self.crop), dtype=torch.float32),
            "index": index,
            "path": f"<synth seed={self.seed} epoch={self.epoch} item={index} {it.family or 'real'}>",
        }
