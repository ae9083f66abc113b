"""A dataset on disk made the way the training stream makes crops, but whole images at native scale.

For evaluation: ``fakelocator synth OUT --native --families a,b --sizes 256,512,1024`` writes
``real/``, ``fake/``, ``entire/`` and ``manifest.csv`` (the shared format, ``docs/data.md``), with
the columns ``family``, ``shape``, ``width``, ``height`` and ``post`` that ``fakelocator eval``
groups by. Each item is a window of a bundled photo (shrunk by area averaging when the photo is
larger than needed, never enlarged; a photo smaller than the size drawn is not used for it), a
family re-synthesizing it, a region shape blending it in (``whole`` makes an entire synthesis) and,
with ``post``, the training stream's post-processing. Item ``i`` comes from
``default_rng([seed, i])`` alone.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError

COLUMNS = ("image", "real", "kind", "property", "family", "shape", "width", "height", "post", "photo", "seed")


@dataclass(frozen=True)
class NativeSetConfig:
    n: int
    seed: int = 1
    families: tuple[str, ...] = ()  # empty = every family
    sizes: tuple[int, ...] = (224, 256, 320, 448, 512, 768, 1024)  # the long side, drawn uniformly
    p_real: float = 0.4
    post: bool = False
    shapes: tuple[str, ...] = ()  # empty = every shape at its weight
    photos: tuple[str, ...] = ()  # extra photo folders (e.g. held-out photos never used in training)
    bundled: bool = True  # also the photos installed packages ship


def _window(photos, size: int, rng: np.random.Generator):
    """A (h, w) window with long side ``size`` from a photo large enough for it, and the photo's name."""
    import cv2

    from fakelocator.training.synth.synthesize import load_photo

    aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.0))))
    long_, short = size, max(16, int(round(size * aspect)))
    fits = [p for p in photos if min(load_photo(p).shape[:2]) >= short and max(load_photo(p).shape[:2]) >= long_]
    if not fits:
        return None, ""
    photo = fits[int(rng.integers(len(fits)))]
    image = load_photo(photo)
    h, w = image.shape[:2]
    landscape = w >= h
    th, tw = (short, long_) if landscape else (long_, short)
    if th > h or tw > w:
        th, tw = tw, th
    f = min(h / th, w / tw)
    shrink = float(np.exp(rng.uniform(0.0, np.log(max(1.0, min(f, 3.0))))))
    if shrink > 1.01:
        image = cv2.resize(image, (max(tw, round(w / shrink)), max(th, round(h / shrink))), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    y0, x0 = int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1))
    window = image[y0:y0 + th, x0:x0 + tw]
    if rng.random() < 0.5:
        window = window[:, ::-1]
    return np.ascontiguousarray(window), photo.name


def write_native_set(out_dir: str | Path, config: NativeSetConfig, *, overwrite: bool = False) -> dict[str, int]:
    """Write the dataset; returns the number of images per kind."""
    import cv2

    from fakelocator.training.groundtruth import partial_manipulation_map
    from fakelocator.training.synth.generate import single_threaded
    from fakelocator.training.synth.families import FAMILIES, lookup
    from fakelocator.training.synth.trained import TRAINED_FAMILIES
    from fakelocator.training.synth.photos import collect_photos
    from fakelocator.training.synth.post import postprocess
    from fakelocator.training.synth.shapes import SHAPES, make_mask

    out = Path(out_dir)
    if (out / "manifest.csv").exists() and not overwrite:
        raise FakeLocatorError(f"{out} already holds a dataset; pass --overwrite to replace it")
    names = config.families or tuple(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES and n not in TRAINED_FAMILIES]
    if unknown:
        raise FakeLocatorError(f"unknown families {unknown}; known: {', '.join([*FAMILIES, *TRAINED_FAMILIES])}")
    shapes = {k: v for k, v in SHAPES.items() if not config.shapes or k in config.shapes}
    photos, _ = collect_photos(tuple(config.photos), bundled=config.bundled)
    for sub in ("real", "fake", "entire"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    with single_threaded():
        for i in range(config.n):
            rng = np.random.default_rng([config.seed, i])
            size = int(config.sizes[int(rng.integers(len(config.sizes)))])
            real, photo = _window(photos, size, rng)
            if real is None:
                continue
            name = f"{i:06d}.png"
            common = {"width": real.shape[1], "height": real.shape[0], "photo": photo, "seed": f"{config.seed}:{i}",
                      "post": int(config.post)}
            if rng.random() < config.p_real:
                image = postprocess(real, None, rng)[0] if config.post else real
                cv2.imwrite(str(out / "real" / name), image[:, :, ::-1])
                rows.append({**common, "image": f"real/{name}", "real": "", "kind": "real", "property": "",
                             "family": "", "shape": "", "width": image.shape[1], "height": image.shape[0]})
                continue
            family = names[int(rng.integers(len(names)))]
            keys = list(shapes)
            p = np.asarray([shapes[k] for k in keys], np.float64)
            shape = keys[int(rng.choice(len(keys), p=p / p.sum()))]
            candidate = lookup(family).make(real, rng)
            if shape == "whole":
                fake = candidate
            else:
                mask = make_mask(shape, real.shape[:2], rng).astype(np.float32)
                fake = np.clip(np.rint(real + mask[..., None] * (candidate.astype(np.float32) - real)), 0, 255).astype(np.uint8)
            if config.post:  # the same processing of both, so Eq. 7 still reads the edit only
                state = rng.bit_generator.state
                fake = postprocess(fake, None, rng)[0]
                rng.bit_generator.state = state
                real = postprocess(real, None, rng)[0]
            if shape == "whole":
                cv2.imwrite(str(out / "entire" / name), fake[:, :, ::-1])
                rows.append({**common, "image": f"entire/{name}", "real": "", "kind": "entire", "property": "entire",
                             "family": family, "shape": shape})
                continue
            if float(partial_manipulation_map(real, fake).max()) < 2 / 255:
                continue  # an edit that changed nothing visible is no test item
            cv2.imwrite(str(out / "real" / name), real[:, :, ::-1])
            cv2.imwrite(str(out / "fake" / name), fake[:, :, ::-1])
            rows.append({**common, "image": f"real/{name}", "real": "", "kind": "real", "property": "", "family": "", "shape": ""})
            rows.append({**common, "image": f"fake/{name}", "real": f"real/{name}", "kind": "partial", "property": shape,
                         "family": family, "shape": shape})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: str(r.get(c, "")) for c in COLUMNS} for r in rows)
    (out / "manifest.csv").write_text(buf.getvalue(), encoding="utf-8")
    counts = {k: sum(r["kind"] == k for r in rows) for k in ("real", "partial", "entire")}
    (out / "synth.json").write_text(json.dumps({
        "fakelocator_version": __version__, "native_set": {**config.__dict__, "families": list(names), "photos": [str(p) for p in config.photos]},
        "images": counts}, indent=2) + "\n", encoding="utf-8")
    return counts
