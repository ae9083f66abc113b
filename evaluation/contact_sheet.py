"""A contact sheet of evaluated images: one row per image, input | ground truth | map | overlay.

Each row is labelled with the file name, its kind and family, the model's score, and the map's pixel
AUC and COSS against the ground truth; the overlay carries the colour bar of
``runtime.overlay.with_colorbar`` (the overlay people get from ``trt-locate --overlay``).

Which images (``select``): the ones named by ``include`` first (files or folders; an image of the
dataset is shown with its ground truth, any other image with "no ground truth", e.g. the demo's
``samples/``), then, up to ``count`` rows in all, manipulated images of the held-out families (all
manipulated images when no family is held out), taken in turn from each family so that every family
shows, in a seeded order. The chosen images are run through the locator again (a dozen images: far
cheaper than keeping every map of the evaluation), exactly as the evaluation ran them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation.metrics import coss, pixel_metrics
from fakelocator.runtime.overlay import map_levels, overlay, with_colorbar
from fakelocator.training.groundtruth import entire_synthesis_map, partial_manipulation_map, real_map
from fakelocator.training.samples import Sample, is_image_file, read_image

PANEL_HEIGHT = 192
MAX_ASPECT = 2.0  # panels wider than this × their height are squeezed
CAPTION_HEIGHT = 22
GAP = 4


@dataclass(frozen=True)
class Pick:
    """One row: an image and, when it belongs to the dataset, its sample and family."""

    path: Path
    sample: Sample | None = None
    family: str = ""


def expand_paths(paths) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if is_image_file(f))
            if not found:
                raise FakeLocatorError(f"contact sheet: {p} holds no images")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FakeLocatorError(f"contact sheet: {p}: no such file or folder")
    return out


def select(samples: list[Sample], records: list[dict], count: int, *, include=(), held_out=(), seed: int = 0) -> list[Pick]:
    """The rows of the sheet (module docstring). ``records`` are ``Evaluation.records`` (same order
    as ``samples``): they give each sample's family and whether it was evaluated."""
    if count < 0:
        raise FakeLocatorError(f"contact sheet: the number of images must be >= 0, got {count}")
    by_path = {Path(s.image).resolve(): i for i, s in enumerate(samples)}
    picks: list[Pick] = []
    taken: set[int] = set()
    for path in expand_paths(include):
        i = by_path.get(path.resolve())
        if i is None:
            picks.append(Pick(path))
        elif i not in taken:
            taken.add(i)
            picks.append(Pick(Path(samples[i].image), samples[i], records[i].get("family", "")))
    candidates = [i for i, r in enumerate(records) if r["label"] == 1 and r.get("score") is not None and i not in taken]
    if held_out:
        candidates = [i for i in candidates if records[i].get("family") in set(held_out)] or candidates
    families: dict[str, list[int]] = {}
    for i in np.random.default_rng([seed, 0xC0]).permutation(candidates).tolist() if candidates else []:
        families.setdefault(records[i].get("family", ""), []).append(i)
    queues = [families[f] for f in sorted(families)]
    while len(picks) < count and any(queues):
        for q in queues:
            if q and len(picks) < count:
                i = q.pop(0)
                picks.append(Pick(Path(samples[i].image), samples[i], records[i].get("family", "")))
    return picks


def _panel(image_bgr: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = image_bgr.shape[:2]
    width = max(1, min(int(round(w * height / h)), int(MAX_ASPECT * height)))
    return cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)


def _gray(m: np.ndarray) -> np.ndarray:
    return np.repeat(map_levels(m)[:, :, None], 3, axis=2)


def _framed(panel: np.ndarray) -> np.ndarray:
    """A 1-pixel grey frame, so that an all-white map (an entire synthesis) shows on the white sheet."""
    out = panel.copy()
    out[[0, -1], :] = 128
    out[:, [0, -1]] = 128
    return out


def _note(shape: tuple[int, int], text: str) -> np.ndarray:
    import cv2

    h, w = shape
    panel = np.full((h, w, 3), 235, np.uint8)
    cv2.putText(panel, text, (6, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
    return panel


def _ground_truth(pick: Pick, image_rgb: np.ndarray) -> np.ndarray | None:
    s = pick.sample
    if s is None:
        return None
    h, w = image_rgb.shape[:2]
    if s.kind == "partial":
        return partial_manipulation_map(read_image(s.real), image_rgb)
    return entire_synthesis_map(h, w) if s.kind == "entire" else real_map(h, w)


def _fmt(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.3f}"


def render_row(locator, pick: Pick, *, binarize_threshold: float = 0.1, height: int = PANEL_HEIGHT) -> tuple[np.ndarray, dict]:
    """One labelled row (uint8 BGR) and its numbers ({image, kind, family, score, pixel_auc, coss})."""
    import cv2

    image = read_image(pick.path)  # RGB, as the evaluation reads it
    result = locator.locate(image, color_order="RGB")
    gt = _ground_truth(pick, image)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    info = {"image": str(pick.path), "kind": pick.sample.kind if pick.sample else "not in the dataset",
            "family": pick.family, "score": float(result.score), "pixel_auc": math.nan, "coss": math.nan}
    if gt is not None and pick.sample.kind != "real":
        info["pixel_auc"] = pixel_metrics(result.map, gt, binarize_threshold)["pixel_auc"]
        info["coss"] = coss(result.map, gt)
    body = _panel(bgr, height)
    size = body.shape[:2]
    panels = [
        body,
        _framed(_panel(_gray(gt), height)) if gt is not None else _note(size, "no ground truth"),
        _framed(_panel(_gray(result.map), height)),
        with_colorbar(_panel(overlay(bgr, result.map), height)),
    ]
    gap = np.full((height, GAP, 3), 255, np.uint8)
    row = panels[0]
    for p in panels[1:]:
        row = np.concatenate([row, gap, p], axis=1)
    caption = np.full((CAPTION_HEIGHT, row.shape[1], 3), 255, np.uint8)
    kind = info["kind"] + (f" / {pick.family}" if pick.family and pick.family != info["kind"] else "")
    text = (f"{pick.path.name}  ({kind})  score {info['score']:.3f}  pixel AUC {_fmt(info['pixel_auc'])}"
            f"  COSS {_fmt(info['coss'])}")
    cv2.putText(caption, text, (4, CAPTION_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([caption, row], axis=0), info


def compose(rows: list[np.ndarray], title: str = "") -> np.ndarray:
    """Rows stacked, padded on the right to the widest, under a header naming the columns."""
    import cv2

    if not rows:
        raise FakeLocatorError("contact sheet: no images to show")
    width = max(r.shape[1] for r in rows)
    header = np.full((CAPTION_HEIGHT + 4, width, 3), 255, np.uint8)
    cv2.putText(header, (title + "   " if title else "") + "input | ground truth (Eq. 7) | map | overlay",
                (4, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (0, 0, 0), 1, cv2.LINE_AA)
    padded = [header]
    for r in rows:
        pad = np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)
        padded += [np.concatenate([r, pad], axis=1), np.full((GAP, width, 3), 255, np.uint8)]
    return np.concatenate(padded, axis=0)


def write_contact_sheet(
    locator, samples: list[Sample], records: list[dict], path: str | Path, count: int, *,
    include=(), held_out=(), binarize_threshold: float = 0.1, seed: int = 0, title: str = "",
) -> tuple[Path, list[dict]]:
    """Choose, run and render the rows and write the PNG; returns its path and each row's numbers."""
    import cv2

    picks = select(samples, records, count, include=include, held_out=held_out, seed=seed)
    rendered = [render_row(locator, p, binarize_threshold=binarize_threshold) for p in picks]
    sheet = compose([r for r, _ in rendered], title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())
    return path, [info for _, info in rendered]
