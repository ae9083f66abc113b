"""Real photos: the ones installed packages ship, and folders the user passes. Nothing is downloaded.

Bundled photos are found in the packages' own install locations (``importlib.util.find_spec``, which
does not import them); a package that is not installed, or a file a package version no longer ships,
is skipped. The licence notes are what the shipping package states in its docstrings or README files.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError, InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class BundledPhoto:
    package: str  # the importable package that ships the file
    resource: str  # path inside that package
    license: str  # as the package states it
    size: tuple[int, int] = (0, 0)  # (width, height) the face boxes were checked on
    faces: tuple[tuple[int, int, int, int], ...] = ()  # frontal faces (x, y, w, h), checked by eye


#: Camera photographs shipped by scikit-image, matplotlib and scikit-learn. Left out on purpose:
#: drawings and synthetic images (``color.png``, ``phantom.png``, ``logo.png``, ``horse.png``,
#: ``chessboard_*.png``), a reconstructed phase image (``cell.png``), and files smaller than a model
#: input (``page.png``, ``text.png``, ``microaneurysms.png``). The installed packages hold no other
#: camera photos (searched: every image and array file over 15 kB; docs/synthesis.md, "Sources").
BUNDLED = (
    BundledPhoto("skimage", "data/astronaut.png", "NASA; no known copyright restrictions, public domain (scikit-image)",
                 (512, 512), ((176, 66, 95, 95),)),
    BundledPhoto("skimage", "data/camera.png", "CC0 by the photographer, Lav Varshney (scikit-image)"),
    BundledPhoto("skimage", "data/chelsea.png", "CC0 by the photographer, Stefan van der Walt (scikit-image)"),
    BundledPhoto("skimage", "data/coffee.png", "CC0 by the photographer, Rachel Michetti (scikit-image)"),
    BundledPhoto("skimage", "data/rocket.jpg", "SpaceX, released into the public domain (scikit-image)"),
    BundledPhoto("skimage", "data/motorcycle_left.png", "Middlebury 2014 stereo benchmark, Scharstein et al. (scikit-image states no licence)"),
    BundledPhoto("skimage", "data/motorcycle_right.png", "Middlebury 2014 stereo benchmark, Scharstein et al. (scikit-image states no licence)"),
    BundledPhoto("skimage", "data/hubble_deep_field.jpg", "NASA, may be freely used in the public domain (scikit-image)"),
    BundledPhoto("skimage", "data/retina.jpg", "Mikael Häggström, CC0 1.0 via Wikimedia Commons (scikit-image)"),
    BundledPhoto("skimage", "data/ihc.png", "CMMI; no known copyright restrictions (scikit-image)"),
    BundledPhoto("skimage", "data/coins.png", "Brooklyn Museum; no known copyright restrictions (scikit-image)"),
    BundledPhoto("skimage", "data/clock_motion.png", "public domain, by the photographer Stefan van der Walt (scikit-image)"),
    BundledPhoto("skimage", "data/brick.png", "CC0Textures Bricks25, CC0 (scikit-image)"),
    BundledPhoto("skimage", "data/grass.png", "DeviantArt linolafett Grass-01, CC0 (scikit-image)"),
    BundledPhoto("skimage", "data/gravel.png", "CC0Textures Gravel04, CC0 (scikit-image)"),
    BundledPhoto("skimage", "data/moon.png", "surface of the moon (scikit-image states no licence)"),
    BundledPhoto("matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
                 "portrait of Grace Hopper (U.S. Navy); matplotlib states no separate licence", (512, 600),
                 ((188, 150, 160, 170),)),
    BundledPhoto("sklearn", "datasets/images/china.jpg", "CC BY 2.0, danielbuechele on Flickr (scikit-learn README)"),
    BundledPhoto("sklearn", "datasets/images/flower.jpg", "CC BY 2.0, vultilion on Flickr (scikit-learn README)"),
)


@dataclass(frozen=True)
class Photo:
    """One source photo. ``faces`` are (x, y, w, h) boxes in its pixels; ``faces_from`` says where they
    came from: ``"catalogue"`` (checked by eye for a bundled photo), ``"detector"``
    (``faces.detect_faces``) or ``""`` (not looked for yet)."""

    name: str
    path: str
    source: str  # the package that ships it, or "user"
    license: str
    height: int
    width: int
    sha256: str
    faces: tuple[tuple[int, int, int, int], ...] = field(default=())
    faces_from: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name, "path": self.path, "source": self.source, "license": self.license,
            "height": self.height, "width": self.width, "sha256": self.sha256,
            "faces": [list(f) for f in self.faces], "faces_from": self.faces_from,
        }


def _package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (importing sklearn takes seconds)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def read_rgb(path: str | Path) -> np.ndarray:
    """Any image file → uint8 (H, W, 3) RGB; gray becomes three equal channels, alpha is dropped."""
    import cv2

    raw = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        raise InputError(str(path), "not a readable image")
    if image.dtype != np.uint8:
        scale = 255.0 / max(float(image.max()), 1.0) if image.dtype.kind in "iu" else 255.0
        image = np.clip(image.astype(np.float64) * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, ::-1])


def _describe(path: Path, name: str, source: str, license: str) -> tuple[Photo | None, str | None]:
    try:
        image = read_rgb(path)
    except InputError as e:
        return None, str(e)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    h, w = image.shape[:2]
    return Photo(name, str(path), source, license, h, w, digest), None


def bundled_photos() -> tuple[list[Photo], list[str]]:
    """The bundled photos that are installed here, and a note for each one that is not."""
    photos, notes = [], []
    for item in BUNDLED:
        root = _package_dir(item.package)
        if root is None:
            notes.append(f"{item.package}/{item.resource}: package {item.package} is not installed")
            continue
        path = root / item.resource
        if not path.is_file():
            notes.append(f"{item.package}/{item.resource}: not shipped by this version of {item.package}")
            continue
        photo, problem = _describe(path, f"{item.package}:{Path(item.resource).stem}", item.package, item.license)
        if photo is None:
            notes.append(problem)
            continue
        if not item.faces or item.size == (photo.width, photo.height):
            photo = replace(photo, faces=item.faces, faces_from="catalogue")
        photos.append(photo)
    return photos, notes


def user_photos(folder: str | Path) -> tuple[list[Photo], list[str]]:
    """Every image under ``folder`` (recursively, sorted by path), and a note for each unreadable one."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FakeLocatorError(f"photo folder {folder}: not a directory")
    photos, notes = [], []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        name = f"user:{path.relative_to(root).with_suffix('').as_posix()}"
        photo, problem = _describe(path, name, "user", "supplied by the user")
        if photo is None:
            notes.append(problem)
        else:
            photos.append(photo)
    return photos, notes


def collect_photos(folders: tuple[str, ...] = (), *, bundled: bool = True, min_side: int = 224) -> tuple[list[Photo], list[str]]:
    """The photo set of a run: bundled ones (when asked) then the users', without too-small ones.

    Returns the photos and notes on everything that was skipped and why.
    """
    photos, notes = [], []
    if bundled:
        found, skipped = bundled_photos()
        photos += found
        notes += skipped
    for folder in folders:
        found, skipped = user_photos(folder)
        if not found:
            notes.append(f"photo folder {folder}: no readable images ({', '.join(IMAGE_SUFFIXES)})")
        photos += found
        notes += skipped
    usable = []
    for p in photos:
        if min(p.height, p.width) < min_side:
            notes.append(f"{p.path}: {p.width}x{p.height} is smaller than the smallest crop side ({min_side} px)")
        else:
            usable.append(p)
    if not usable:
        raise FakeLocatorError(
            "no usable photos: " + ("; ".join(notes) if notes else "none given")
            + f". Pass --photos DIR with images of at least {min_side}x{min_side} px"
        )
    return usable, notes
