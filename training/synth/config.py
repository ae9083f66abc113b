"""The synthesis recipe as one dataclass, saved as ``synth.json`` beside the data it made."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from fakelocator.errors import FakeLocatorError

KINDS = ("partial", "entire", "real")
REGIONS = ("ellipse", "blob", "face", "hair", "eyes", "mouth", "nose")
FAMILIES = ("transposed_conv", "nearest", "bilinear", "bicubic", "unpool")
DECODERS = ("single", "stack", "conv_decoder")
EDITS = ("brightness", "gamma", "contrast", "saturation", "hue", "tint")
ENCODERS = ("avgpool", "maxpool", "strided_conv", "antialiased")


def _weights(**w: float) -> dict[str, float]:
    return dict(w)


@dataclass(frozen=True)
class SynthConfig:
    """How ``fakelocator synth`` makes (real, fake) pairs. Defaults are the default model's recipe.

    Sizes are in pixels; ranges are ``(low, high)``; weight tables need not sum to one.

    Args:
        n: number of items; each is a partial pair (a real and its fake), an entire synthesis, or a
            real image without a partner, drawn with ``kind_fractions``.
        seed: item ``i`` is made from ``numpy.random.default_rng([seed, i])`` alone, so output does
            not depend on the number of workers, and the first ``n`` items of a larger run are the
            same images.
        photos: folders of the user's own photos (searched recursively), used with or instead of
            the bundled ones.
        bundled_photos: use the photos that installed packages ship (see ``photos.BUNDLED``).
        detect_faces: look for frontal faces in photos that have no checked face boxes (the user's);
            face-part regions are laid out on them.
        face_weight: how much more often a photo with a detected face is picked than one without.
        model_input: side of the model's (square, stretched) input; the decoder's working scale is
            set relative to it, so that its upsampling texture is visible to the model.
        size_range: output width and height, each within this range.
        aspect_range: output width / height.
        max_upscale: largest factor a source crop is enlarged by to reach the output size.
        min_source_side: smallest crop side taken from a photo. At the model's input size (224), the
            model then sees the photo downscaled, never the texture of our own enlargement.
        kind_fractions: shares of partial, entire and real-only items. Every partial item also
            yields a real image, so the defaults give about as many real images as fakes.
        region_weights: how often each region kind (the manifest's ``property``) is chosen.
        region_area: area of a partial region as a fraction of the image.
        face_region_min_side: a detected face is used for face-part regions only when its box is at
            least this fraction of the image's shorter side, and the part covers at least
            ``face_part_min_area`` of the image; otherwise a plausible box is drawn (whose parts
            cover at least ``region_area[0]``).
        gan_scale: the decoder's working resolution relative to the model's input resolution. At 1
            a decoder pixel is a model-input pixel, so a stride-2 checkerboard has a 2-pixel period
            at the model input; at 0.5 a 4-pixel one. The working resolution never exceeds the image's.
        depth_weights: how often the encoder downsamples 1, 2 or 3 times (then the decoder upsamples
            as often).
        decoder_weights: ``single`` (one family at every level), ``stack`` (a family per level) or
            ``conv_decoder`` (a small random convolutional decoder on lifted feature channels).
        family_weights: upsampling families of Sec. III-B.
        encoder_weights: downsampling operators of the encoder.
        skip_retention: fraction of each level's detail that the decoder's skip connections carry
            back; the rest is lost and replaced by what the upsampler invents.
        detail_restore: fraction of the detail finer than the working resolution restored at full
            resolution for partial manipulations (the skip-connection "repair" of Sec. IV-C);
            ``entire_detail_restore`` the same for entire syntheses, which a GAN makes from scratch.
        texture_strength: amplitude of the random perturbation of learned kernels (transposed
            convolutions, post-upsampling convolutions, the random conv decoder).
        decoder_noise: standard deviation (0..1 units) of the content each decoder level invents
            before it upsamples; the upsampler turns it into its texture even where the photo is flat.
        edit_probability: chance that a partial manipulation also changes an attribute (colour,
            brightness, hue…) inside the region; ``entire_edit_probability`` for entire syntheses.
        edit_weights: attribute edits, applied to the latent so that they pass through the decoder.
        edit_strength: mean absolute change the edit aims at inside the region, in 0..1 units.
        feather: soft edge width of a region as a fraction of its size (sqrt of its area).
        min_difference: a partial fake whose ground truth averages less than this inside its region
            (in 0..1 units) is made again, at most 4 times, with a stronger manipulation.
        jitter_probability: chance that a real view gets a pointwise photometric change (gamma,
            gains, saturation); pointwise, so it adds no spatial texture.
        png_compression: zlib level of the PNG files (0–9); it changes file sizes, not pixels.
    """

    n: int = 1000
    seed: int = 0
    photos: tuple[str, ...] = ()
    bundled_photos: bool = True
    detect_faces: bool = True
    face_weight: float = 3.0
    model_input: int = 224
    size_range: tuple[int, int] = (224, 1024)
    aspect_range: tuple[float, float] = (0.6, 1.67)
    max_upscale: float = 2.0
    min_source_side: int = 224
    kind_fractions: dict[str, float] = field(default_factory=lambda: _weights(partial=0.7, entire=0.15, real=0.15))
    region_weights: dict[str, float] = field(default_factory=lambda: _weights(
        ellipse=1.0, blob=1.0, face=1.0, hair=1.0, eyes=0.7, mouth=0.7, nose=0.4))
    region_area: tuple[float, float] = (0.015, 0.45)
    face_region_min_side: float = 0.25
    face_part_min_area: float = 0.005
    gan_scale: tuple[float, float] = (0.5, 1.4)
    depth_weights: dict[str, float] = field(default_factory=lambda: {"1": 0.3, "2": 0.4, "3": 0.3})
    decoder_weights: dict[str, float] = field(default_factory=lambda: _weights(single=0.55, stack=0.25, conv_decoder=0.2))
    family_weights: dict[str, float] = field(default_factory=lambda: _weights(
        transposed_conv=1.0, nearest=1.0, bilinear=1.0, bicubic=1.0, unpool=0.8))
    encoder_weights: dict[str, float] = field(default_factory=lambda: _weights(
        avgpool=1.0, maxpool=0.7, strided_conv=1.0, antialiased=0.7))
    skip_retention: tuple[float, float] = (0.0, 0.75)
    detail_restore: tuple[float, float] = (0.75, 1.0)
    entire_detail_restore: tuple[float, float] = (0.0, 0.3)
    texture_strength: tuple[float, float] = (0.03, 0.15)
    decoder_noise: tuple[float, float] = (0.004, 0.016)
    edit_probability: float = 0.85
    entire_edit_probability: float = 0.3
    edit_weights: dict[str, float] = field(default_factory=lambda: _weights(
        brightness=1.0, gamma=1.0, contrast=0.7, saturation=0.7, hue=1.0, tint=1.5))
    edit_strength: tuple[float, float] = (0.04, 0.2)
    feather: tuple[float, float] = (0.04, 0.15)
    min_difference: float = 0.015
    jitter_probability: float = 0.5
    png_compression: int = 1

    def __post_init__(self):
        object.__setattr__(self, "photos", tuple(str(p) for p in self.photos))
        for name in ("size_range", "aspect_range", "region_area", "gan_scale", "skip_retention", "detail_restore",
                     "entire_detail_restore", "texture_strength", "decoder_noise", "edit_strength", "feather"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) != 2 or value[0] > value[1]:
                raise FakeLocatorError(f"synth config: {name} must be a (low, high) pair with low <= high, got {value}")
        for name, allowed in (("kind_fractions", KINDS), ("region_weights", REGIONS), ("decoder_weights", DECODERS),
                              ("family_weights", FAMILIES), ("edit_weights", EDITS), ("encoder_weights", ENCODERS),
                              ("depth_weights", ("1", "2", "3"))):
            given = {str(k): float(v) for k, v in getattr(self, name).items()}
            unknown = set(given) - set(allowed)
            # canonical key order: draws must not depend on how a file or caller ordered the table
            table = {k: given[k] for k in allowed if k in given}
            object.__setattr__(self, name, table)
            if unknown:
                raise FakeLocatorError(f"synth config: {name} has unknown keys {sorted(unknown)}; allowed: {', '.join(allowed)}")
            if any(v < 0 for v in table.values()) or sum(table.values()) <= 0:
                raise FakeLocatorError(f"synth config: {name} needs non-negative weights with a positive sum, got {table}")
        problems = []
        if self.n < 1:
            problems.append(f"n must be >= 1, got {self.n}")
        if not 8 <= self.size_range[0]:
            problems.append(f"size_range must start at >= 8 px, got {self.size_range}")
        if self.aspect_range[0] <= 0:
            problems.append(f"aspect_range must be positive, got {self.aspect_range}")
        if self.max_upscale < 1:
            problems.append(f"max_upscale must be >= 1, got {self.max_upscale}")
        if not (0 < self.region_area[0] and self.region_area[1] < 1):
            problems.append(f"region_area must lie in (0, 1), got {self.region_area}")
        for name in ("gan_scale", "edit_strength", "feather"):
            if getattr(self, name)[0] <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("texture_strength", "decoder_noise"):
            if getattr(self, name)[0] < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("skip_retention", "detail_restore", "entire_detail_restore"):
            lo, hi = getattr(self, name)
            if lo < 0 or hi > 1:
                problems.append(f"{name} must lie in [0, 1], got {(lo, hi)}")
        for name in ("edit_probability", "entire_edit_probability", "jitter_probability"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.png_compression <= 9:
            problems.append(f"png_compression must be 0..9, got {self.png_compression}")
        if not self.bundled_photos and not self.photos:
            problems.append("no photos: pass photo folders or keep the bundled photos")
        if problems:
            raise FakeLocatorError("synth config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SynthConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise FakeLocatorError(f"synth config has unknown fields {sorted(unknown)}")
        return cls(**d)
