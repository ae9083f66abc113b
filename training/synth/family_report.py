"""A contact sheet and per-call timings of the native-scale synthesis (families, shapes, post, textures).

    python -m fakelocator.training.synth.family_report --sheet docs/img/synth_families.png
    python -m fakelocator.training.synth.family_report --timing --size 320 --n 20

The sheet shows, per family, a native-scale crop of a bundled photo (``real``), the family's
candidate blended into it through a soft mask (``fake``), the Eq. 7 ground truth (brightened by the
printed gain) and a 4× nearest-neighbour zoom of the fake inside the region, where a trace at the
image's own pixel scale (a period-2 checkerboard, blocks, halos) is visible. Timings are the
median CPU time of the calling thread (``time.thread_time``) per call on one core, so that other
jobs on a shared machine inflate them less than wall-clock time would.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.synth.families import FAMILIES, HELD_OUT, blend
from fakelocator.training.synth.post import postprocess
from fakelocator.training.synth.shapes import SHAPES, make_mask
from fakelocator.training.synth.textures import procedural_texture

TILE = 128


_SHEET_PHOTOS = ("data/astronaut.png", "mpl-data/sample_data/grace_hopper.jpg", "data/coffee.png",
                 "datasets/images/china.jpg", "data/chelsea.png")


def _sources(size: int) -> list[np.ndarray]:
    """Native-scale crops (no resize) of a few bundled photos; procedural textures when none is installed."""
    from fakelocator.training.synth.photos import BUNDLED, _package_dir, read_rgb

    crops = []
    for resource in _SHEET_PHOTOS:
        item = next(b for b in BUNDLED if b.resource == resource)
        root = _package_dir(item.package)
        if root is None or not (root / resource).is_file():
            continue
        img = read_rgb(root / resource)
        h, w = img.shape[:2]
        if min(h, w) < size:
            continue
        faces = [f for f in item.faces if f[2] <= size] if item.size == (w, h) else []
        if faces:  # centre the crop on the face
            fx, fy, fw, fh = faces[0]
            y0, x0 = int(np.clip(fy + fh / 2 - size / 2, 0, h - size)), int(np.clip(fx + fw / 2 - size / 2, 0, w - size))
        else:
            y0, x0 = (h - size) // 2, (w - size) // 2
        crops.append(np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size]))
    if not crops:
        crops = [procedural_texture((size, size), np.random.default_rng(i)) for i in range(3)]
    return crops


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    from fakelocator.training.synth.sheet import label_box

    return label_box(tile, text, 0.38)


def family_panel(name: str, real: np.ndarray, rng: np.random.Generator, shape: str = "ellipse") -> np.ndarray:
    """One family's four tiles (real | fake | ground truth | zoom) with a caption, uint8 RGB."""
    import cv2

    size = real.shape[0]
    mask = make_mask(shape, real.shape[:2], rng)
    fake = blend(real, FAMILIES[name].make(real, rng), mask)
    gt = partial_manipulation_map(real, fake)
    inside = gt[mask > 0.5]
    gain = float(np.clip(0.9 / max(float(np.percentile(inside, 99)) if inside.size else 1.0, 1e-3), 1.0, 16.0))
    gt_img = np.repeat((np.clip(gt * gain, 0, 1) * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    ys, xs = np.nonzero(mask > 0.5)
    cy, cx = (int(ys.mean()), int(xs.mean())) if ys.size else (size // 2, size // 2)
    z = TILE // 4
    y0, x0 = int(np.clip(cy - z // 2, 0, size - z)), int(np.clip(cx - z // 2, 0, size - z))
    zoom = cv2.resize(fake[y0:y0 + z, x0:x0 + z], (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    fit = lambda im: cv2.resize(im, (TILE, TILE), interpolation=cv2.INTER_AREA) if im.shape[0] != TILE else im  # noqa: E731
    mean = float(gt.sum() / max(float(mask.sum()), 1.0)) * 255
    tiles = [_label(fit(real), "real"), _label(fit(fake), f"fake ({shape})"),
             _label(fit(gt_img), f"GT x{gain:.1f}, {mean:.1f} grey"), _label(zoom, "fake, 4x zoom")]
    body = np.concatenate(tiles, axis=1)
    caption = np.full((20, body.shape[1], 3), 255, np.uint8)
    held = "  [held out]" if name in HELD_OUT else ""
    text = f"{name} ({FAMILIES[name].group}){held}"
    cv2.putText(caption, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([caption, body], axis=0)


def write_family_sheet(path: str | Path, *, seed: int = 0, columns: int = 2, names: tuple[str, ...] = ()) -> Path:
    """A PNG with one panel per family (``names``, default all), ``columns`` per row. Returns its path."""
    import cv2

    sources = _sources(TILE)
    shapes = [s for s in SHAPES if s != "whole"]
    panels = [family_panel(name, sources[i % len(sources)], np.random.default_rng([seed, i]), shapes[i % len(shapes)])
              for i, name in enumerate(names or FAMILIES)]
    blank = np.full_like(panels[0], 255)
    panels += [blank] * (-len(panels) % columns)
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    rows = []
    for r in range(0, len(panels), columns):
        row = [panels[r]]
        for p in panels[r + 1:r + columns]:
            row += [gap, p]
        rows.append(np.concatenate(row, axis=1))
    sheet = np.concatenate(rows, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(sheet[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())
    return path


def _median_ms(fn, n: int) -> float:
    fn(0)  # warm-up: imports, caches
    times = []
    for i in range(n):
        t = time.thread_time()
        fn(i + 1)
        times.append(time.thread_time() - t)
    return 1000.0 * float(np.median(times))


def time_all(size: int = 320, n: int = 20, names: tuple[str, ...] = ()) -> list[tuple[str, str, float]]:
    """(kind, name, median CPU ms per call) for every family (``names``, default all), shape,
    ``postprocess`` and texture."""
    real = _sources(size)[0]
    rows = []
    for name in names or FAMILIES:
        fam = FAMILIES[name]
        rows.append(("family", name, _median_ms(lambda i, f=fam: f.make(real, np.random.default_rng([i, 5])), n)))
    for shape in SHAPES:
        rows.append(("shape", shape, _median_ms(lambda i, s=shape: make_mask(s, (size, size), np.random.default_rng(i)), n)))
    gt = np.zeros((size, size), np.float32)
    rows.append(("post", "postprocess", _median_ms(lambda i: postprocess(real, gt, np.random.default_rng(i)), n)))
    rows.append(("texture", "procedural_texture",
                 _median_ms(lambda i: procedural_texture((size, size), np.random.default_rng(i)), n)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sheet", type=Path, help="write the families' contact sheet (PNG) here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing", action="store_true", help="print median CPU ms per call (one thread)")
    parser.add_argument("--size", type=int, default=320, help="side of the square image timed")
    parser.add_argument("--n", type=int, default=20, help="calls timed per item")
    parser.add_argument("--families", nargs="+", default=(), metavar="NAME", help="only these families")
    args = parser.parse_args(argv)
    if not args.sheet and not args.timing:
        parser.error("nothing to do: pass --sheet PATH and/or --timing")
    unknown = [n for n in args.families if n not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    names = tuple(args.families)
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.sheet:
        print(f"wrote {write_family_sheet(args.sheet, seed=args.seed, names=names)}")
    if args.timing:
        print(f"| kind | name | ms per {args.size}x{args.size} call (median of {args.n}, CPU time, 1 thread) |")
        print("|---|---|---|")
        for kind, name, ms in time_all(args.size, args.n, names):
            print(f"| {kind} | {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
