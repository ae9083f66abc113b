"""Finding training samples on disk, reading images, and their ground-truth maps. Torch-free.

A dataset root (the format ``fakelocator synth`` writes, see ``docs/data.md``) is either

- described by ``ROOT/manifest.csv`` (columns ``image,real,kind,property``; extra columns ignored),
  which is then authoritative, or
- laid out as ``ROOT/real/``, ``ROOT/fake/`` and ``ROOT/entire/``: a file in ``fake/`` is a partial
  manipulation of the file in ``real/`` with the same relative path without extension.

Folders of real images only, and folders of entire syntheses, can be added as they are.

Problems (a fake without its real image, a pair of different sizes, a missing file, a bad manifest
row) are collected and reported together, naming each path, as one ``InvalidSamplesError``; with
``skip_invalid=True`` the offending samples are left out and each is logged as a warning. Nothing is
skipped silently. A real image without a fake is not a problem: it is a real sample.
"""

from __future__ import annotations

import builtins
import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.training.groundtruth import entire_synthesis_map, partial_manipulation_map, real_map

log = logging.getLogger(__name__)

KINDS = ("real", "partial", "entire")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("image", "real", "kind", "property")
#: How many problems an ``InvalidSamplesError`` message lists; ``.problems`` always holds them all.
MAX_LISTED = 50


@dataclass(frozen=True)
class Sample:
    """One training image and what is needed to make its ground truth.

    Args:
        image: path of the image the network sees.
        kind: ``real`` (ground truth all zeros), ``partial`` (Eq. 7 against ``real``) or ``entire``
            (all ones).
        real: the unmanipulated image a ``partial`` sample was made from; ``None`` otherwise.
        property: the manipulated facial property or region (``hair``, ``Smile``, ``entire``...);
            empty for real images.
        root: the dataset root or folder the sample was found in.
    """

    image: Path
    kind: str
    real: Path | None = None
    property: str = ""
    root: Path | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FakeLocatorError(f"{self.image}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "partial") != (self.real is not None):
            raise FakeLocatorError(f"{self.image}: a partial sample needs its real image, and only a partial one has one")

    @builtins.property  # the field ``property`` shadows the builtin inside this class
    def label(self) -> int:
        """0 for real, 1 for fake (partial or entire)."""
        return 0 if self.kind == "real" else 1


class InvalidSamplesError(FakeLocatorError):
    """Some samples cannot be used; ``problems`` lists every one as ``"path: reason"``."""

    def __init__(self, where: str, problems: list[str]):
        self.problems = list(problems)
        listed = "\n  ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(self.problems)} invalid sample(s) in {where} (fix them, or pass --skip-invalid to leave "
            f"them out with a warning each):\n  {listed}{tail}"
        )


def is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _images_by_key(folder: Path, problems: list[str]) -> dict[str, Path]:
    """Images under ``folder`` keyed by their relative path without extension (POSIX separators)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not is_image_file(path):
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            problems.append(f"{path}: same name as {found[key]} apart from the extension; cannot tell which to pair")
            continue
        found[key] = path
    return found


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) as stored, from the file header without decoding the pixels (the runtime's
    ``headers.probe``); InputError when the header cannot be read. Pixels missing after a good
    header are found when the image is decoded."""
    from fakelocator.runtime.decode import read_file
    from fakelocator.runtime.headers import probe

    header = probe(read_file(path), str(path), complete=False)
    return header.height, header.width


def _check_images(samples: list[Sample], problems: list[str]) -> list[Sample]:
    """Keep the samples whose image headers read, and whose pairs have the same size."""
    good = []
    for s in samples:
        try:
            hw = image_size(s.image)
            real_hw = image_size(s.real) if s.kind == "partial" else hw
        except InputError as e:
            problems.append(str(e))
            continue
        if hw != real_hw:
            problems.append(
                f"{s.image}: size {hw[1]}x{hw[0]} differs from its real image {s.real} "
                f"({real_hw[1]}x{real_hw[0]}); Eq. 7 needs pixel-aligned pairs"
            )
            continue
        good.append(s)
    return good


def _finish(where: str, samples: list[Sample], problems: list[str], skip_invalid: bool) -> list[Sample]:
    if problems:
        if not skip_invalid:
            raise InvalidSamplesError(where, problems)
        for p in problems:
            log.warning("skipping invalid sample: %s", p)
    return samples


def load_samples(root: str | Path, *, skip_invalid: bool = False, check_images: bool = True) -> list[Sample]:
    """Every sample of a dataset root, from ``manifest.csv`` when present, else from its folders.

    Args:
        root: the dataset root.
        skip_invalid: leave out invalid samples, logging a warning for each, instead of raising.
        check_images: read every image's header (not its pixels) to report unreadable files and
            pairs of different sizes now rather than in the middle of training.
    """
    root = Path(root)
    if not root.is_dir():
        raise FakeLocatorError(f"dataset {root}: no such directory")
    problems: list[str] = []
    if (root / MANIFEST).is_file():
        samples = _from_manifest(root, problems)
    else:
        samples = _from_folders(root, problems)
    if check_images:
        samples = _check_images(samples, problems)
    samples = _finish(str(root), samples, problems, skip_invalid)
    if not samples:
        raise FakeLocatorError(f"dataset {root}: no images found")
    return samples


def _from_folders(root: Path, problems: list[str]) -> list[Sample]:
    folders = {name: root / name for name in ("real", "fake", "entire")}
    if not any(f.is_dir() for f in folders.values()):
        raise FakeLocatorError(
            f"dataset {root}: neither {MANIFEST} nor any of real/, fake/, entire/; see docs/data.md for the layout"
        )
    found = {name: _images_by_key(f, problems) if f.is_dir() else {} for name, f in folders.items()}
    samples = [Sample(path, "real", root=root) for path in found["real"].values()]
    for key, path in found["fake"].items():
        real = found["real"].get(key)
        if real is None:
            problems.append(f"{path}: no real image real/{key}.* to pair it with")
            continue
        samples.append(Sample(path, "partial", real=real, root=root))
    samples += [Sample(path, "entire", property="entire", root=root) for path in found["entire"].values()]
    return samples


def _from_manifest(root: Path, problems: list[str]) -> list[Sample]:
    manifest = root / MANIFEST
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in ("image", "kind") if c not in columns]
            if missing:
                raise FakeLocatorError(
                    f"{manifest}: missing column(s) {', '.join(missing)}; expected {','.join(MANIFEST_COLUMNS)}"
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FakeLocatorError(f"{manifest}: cannot be read ({e})") from None
    samples = []
    for line, row in enumerate(rows, start=2):
        where = f"{manifest}:{line}"
        image_rel = (row.get("image") or "").strip()
        real_rel = (row.get("real") or "").strip()
        kind = (row.get("kind") or "").strip()
        prop = (row.get("property") or "").strip()
        if not image_rel:
            problems.append(f"{where}: empty image")
            continue
        image = root / image_rel
        if kind not in KINDS:
            problems.append(f"{where}: {image}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
            continue
        if not image.is_file():
            problems.append(f"{where}: {image}: no such file")
            continue
        real = None
        if kind == "partial":
            if not real_rel:
                problems.append(f"{where}: {image}: a partial manipulation needs its real image in the 'real' column")
                continue
            real = root / real_rel
            if not real.is_file():
                problems.append(f"{where}: {image}: its real image {real}: no such file")
                continue
        elif real_rel:
            problems.append(f"{where}: {image}: only kind 'partial' may name a real image, this row is {kind!r}")
            continue
        samples.append(Sample(image, kind, real=real, property=prop or ("entire" if kind == "entire" else ""), root=root))
    return samples


def load_folder(folder: str | Path, kind: str, *, skip_invalid: bool = False, check_images: bool = True) -> list[Sample]:
    """Every image under ``folder`` (recursively) as a ``real`` or ``entire`` sample."""
    if kind not in ("real", "entire"):
        raise FakeLocatorError(f"a plain folder holds real or entire images, not {kind!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FakeLocatorError(f"{kind} image folder {folder}: no such directory")
    samples = [
        Sample(p, kind, property="entire" if kind == "entire" else "", root=folder)
        for p in sorted(folder.rglob("*")) if is_image_file(p)
    ]
    problems: list[str] = []
    if check_images:
        samples = _check_images(samples, problems)
    samples = _finish(str(folder), samples, problems, skip_invalid)
    if not samples:
        raise FakeLocatorError(f"{kind} image folder {folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return samples


def collect_samples(
    roots=(), *, real_dirs=(), entire_dirs=(), skip_invalid: bool = False, check_images: bool = True
) -> list[Sample]:
    """Samples from dataset roots plus folders of real-only and entire-synthesis images."""
    opts = dict(skip_invalid=skip_invalid, check_images=check_images)
    samples: list[Sample] = []
    for root in roots:
        samples += load_samples(root, **opts)
    for folder in real_dirs:
        samples += load_folder(folder, "real", **opts)
    for folder in entire_dirs:
        samples += load_folder(folder, "entire", **opts)
    return samples


def count_kinds(samples: list[Sample]) -> dict[str, int]:
    return {k: sum(s.kind == k for s in samples) for k in KINDS}


def _group_key(s: Sample) -> str:
    return str(s.real if s.kind == "partial" else s.image)


def split_samples(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A deterministic (train, val) split that keeps each real image with every fake made from it.

    Groups (a real image and its partial manipulations; each entire synthesis alone) are shuffled
    by ``seed`` in sorted order, then taken for validation until it holds ``val_fraction`` of the
    samples. The split depends only on the set of samples, the fraction and the seed.
    """
    if not 0 <= val_fraction < 1:
        raise FakeLocatorError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(_group_key(s), []).append(s)
    keys = sorted(groups)
    order = np.random.default_rng([0x5A17, seed]).permutation(len(keys))
    target = round(val_fraction * len(samples))
    val_keys = set()
    taken = 0
    for i in order:
        if taken >= target:
            break
        val_keys.add(keys[i])
        taken += len(groups[keys[i]])
    train = [s for s in samples if _group_key(s) not in val_keys]
    val = [s for s in samples if _group_key(s) in val_keys]
    return train, val


def read_image(path: str | Path) -> np.ndarray:
    """Read any 8- or 16-bit image (grey, RGB, RGBA) as uint8 (H, W, 3) RGB.

    16-bit values are scaled by 255/65535 and rounded; alpha is dropped; EXIF orientation is not
    applied, so the two images of a pair are compared pixel for pixel as stored.
    """
    import cv2

    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise InputError(str(path), f"cannot be read ({e.strerror or e})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(str(path), "not a decodable image")
    if image.dtype == np.uint16:
        image = np.rint(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(str(path), f"unsupported pixel type {image.dtype}; use 8- or 16-bit images")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise InputError(str(path), f"unsupported number of channels {channels}")


def ground_truth(sample: Sample, image: np.ndarray, real_image: np.ndarray | None = None) -> np.ndarray:
    """The sample's fakeness map at full resolution: float32 (H, W) in [0, 1].

    ``image`` is the sample's own uint8 (H, W, 3) RGB image; ``real_image``, its real counterpart,
    is required for a ``partial`` sample (Eq. 7, BT.601 luma, see ``groundtruth.py``).
    """
    h, w = image.shape[:2]
    if sample.kind == "real":
        return real_map(h, w)
    if sample.kind == "entire":
        return entire_synthesis_map(h, w)
    if real_image is None:
        raise FakeLocatorError(f"{sample.image}: a partial sample's ground truth needs its real image {sample.real}")
    if real_image.shape != image.shape:
        raise InputError(
            str(sample.image),
            f"size {image.shape[1]}x{image.shape[0]} differs from its real image {sample.real} "
            f"({real_image.shape[1]}x{real_image.shape[0]})",
        )
    return partial_manipulation_map(real_image, image)
