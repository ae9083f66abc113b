"""Face-parsing labels and the region of each manipulated property (paper Sec. IV-C, Table II).

The parsers of facexlib predict the 19 CelebAMask-HQ classes, but number them differently: BiSeNet
in the order of ``LABELS`` below (the face-parsing.PyTorch order, which we use as the canonical
numbering everywhere, cache included), ParseNet in its own order (``PARSENET_LABELS``). Label maps
are converted to the canonical numbering as soon as a parser returns them.

A property (the manifest's ``property`` column) names one region: a set of labels, the band around
the upper lip (``Mustache``, which has no label of its own), or "everything" (``Entire``). Names are
matched case-insensitively, with spaces and hyphens read as underscores (``Black hair`` =
``black_hair`` = ``Black-Hair``); ``a+b`` is the union of the regions of ``a`` and ``b``.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fakelocator.errors import FakeLocatorError

#: Canonical label numbering (= BiSeNet's): index → CelebAMask-HQ class name.
LABELS = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
#: ParseNet's numbering of the same classes.
PARSENET_LABELS = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
LABEL = {name: i for i, name in enumerate(LABELS)}


def to_canonical_lut(numbering: tuple[str, ...]) -> np.ndarray:
    """uint8 (256,) look-up table: a parser's label index → the canonical index (unknown → background)."""
    lut = np.zeros(256, np.uint8)
    for i, name in enumerate(numbering):
        lut[i] = LABEL[name]
    return lut


#: Table lookups ``lut[labels]`` that turn each parser's output into canonical labels.
CANONICAL_LUT = {"bisenet": to_canonical_lut(LABELS), "parsenet": to_canonical_lut(PARSENET_LABELS)}

FACE = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r", "nose", "mouth", "u_lip", "l_lip")
MOUTH = ("mouth", "u_lip", "l_lip")

ALL = "all"  # the whole image: the attention map is white
UPPER_LIP_BAND = "upper_lip_band"  # Mustache: the upper lip and the skin between it and the nose


@dataclass(frozen=True)
class RegionSpec:
    """What a property modifies: a union of labels and, optionally, the upper-lip band; or all."""

    labels: frozenset[str] = frozenset()
    upper_lip_band: bool = False
    everything: bool = False

    def __or__(self, other: "RegionSpec") -> "RegionSpec":
        return RegionSpec(self.labels | other.labels, self.upper_lip_band or other.upper_lip_band,
                          self.everything or other.everything)


def _labels(*names: str) -> RegionSpec:
    return RegionSpec(labels=frozenset(names))


WHITE = RegionSpec(everything=True)

#: Property (normalized name) → region. Table II's properties first, then the region names of the
#: synthetic generator and a few synonyms. Documented in docs/data.md.
PROPERTY_REGIONS: dict[str, RegionSpec] = {
    # Table II (STGAN, AttGAN, StarGAN, IcGAN, StyleGAN, PGGAN)
    "bald": _labels("hair"),
    "bangs": _labels("hair"),
    "black_hair": _labels("hair"),
    "blond_hair": _labels("hair"),
    "brown_hair": _labels("hair"),
    "eyeglasses": _labels("eye_g", "l_eye", "r_eye"),
    "smile": _labels(*MOUTH),
    "mustache": RegionSpec(upper_lip_band=True),
    "male": _labels(*FACE, "hair"),
    "gender": _labels(*FACE, "hair"),
    "age": _labels(*FACE, "hair"),
    "entire": WHITE,
    # Other CelebA hair and age attributes
    "gray_hair": _labels("hair"),
    "young": _labels(*FACE, "hair"),
    # Region names (the synthetic generator's, and plain parsing regions)
    "hair": _labels("hair"),
    "face": _labels(*FACE),
    "eyes": _labels("l_eye", "r_eye"),
    "brows": _labels("l_brow", "r_brow"),
    "eyebrows": _labels("l_brow", "r_brow"),
    "nose": _labels("nose"),
    "mouth": _labels(*MOUTH),
    "lips": _labels("u_lip", "l_lip"),
    "skin": _labels("skin"),
    "ears": _labels("l_ear", "r_ear", "ear_r"),
    "neck": _labels("neck", "neck_l"),
    "hat": _labels("hat"),
    "glasses": _labels("eye_g", "l_eye", "r_eye"),
    # Regions without a facial meaning (the synthetic generator's random shapes): no parsing region
    # can describe them, so they get the white map, like entire syntheses.
    "ellipse": WHITE,
    "blob": WHITE,
}


def normalize_property(name: str) -> str:
    """``"Black hair"`` → ``"black_hair"``: lower case, spaces and hyphens → underscores."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


class UnknownPropertyError(FakeLocatorError):
    """A property name that is not in ``PROPERTY_REGIONS``."""


def region_spec(prop: str, table: dict[str, RegionSpec] | None = None) -> RegionSpec | None:
    """The region a property modifies; ``None`` for an empty property (a real image).

    Raises ``UnknownPropertyError`` for a name the table does not know.
    """
    table = PROPERTY_REGIONS if table is None else table
    parts = [normalize_property(p) for p in prop.split("+")]
    if not any(parts):
        return None
    spec = RegionSpec()
    for part in parts:
        if part not in table:
            raise UnknownPropertyError(
                f"unknown facial property {prop!r}; known (case-insensitive, '+' joins several): "
                f"{', '.join(sorted(table))}"
            )
        spec = spec | table[part]
    return spec


def upper_lip_band(labels: np.ndarray) -> np.ndarray:
    """Where a mustache grows: the upper lip and the skin above it up to the nose, over the lip's
    width plus 15 % on each side. Without an upper lip, the mouth and lips stand in for it."""
    lip = labels == LABEL["u_lip"]
    if not lip.any():
        lip = np.isin(labels, [LABEL[n] for n in MOUTH])
        if not lip.any():
            return lip
    ys, xs = np.nonzero(lip)
    width = xs.max() - xs.min() + 1
    x0, x1 = max(0, int(xs.min() - 0.15 * width)), int(xs.max() + 0.15 * width) + 1
    nose_rows = np.nonzero((labels[:, x0:x1] == LABEL["nose"]).any(axis=1))[0]
    nose_rows = nose_rows[nose_rows < ys.min()]
    top = int(nose_rows.max()) if nose_rows.size else max(0, int(ys.min() - 0.35 * width))
    band = np.zeros_like(lip)
    band[top:ys.max() + 1, x0:x1] = True
    return lip | (band & np.isin(labels, [LABEL["skin"], LABEL["u_lip"]]))


def region_mask(labels: np.ndarray, spec: RegionSpec) -> np.ndarray | None:
    """bool (h, w) region of ``spec`` in a canonical label map; ``None`` when it is everything."""
    if spec.everything:
        return None
    mask = np.isin(labels, [LABEL[n] for n in sorted(spec.labels)])
    if spec.upper_lip_band:
        mask |= upper_lip_band(labels)
    return mask
