"""A contact sheet of a synthesized dataset, to look at what the model will be trained on.

Each row is one item: the real image, the fake, its ground truth (Eq. 7, brightened by the gain
printed on it; entire syntheses are all ones) and the fake as the model sees it (stretched to the
model input by the contract's resize), zoomed 4× around the manipulated region.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fakelocator.contract import resize_bilinear
from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.synth.photos import read_rgb

TILE = 240
CAPTION = 22


def pick_rows(rows: list[dict], count: int) -> list[dict]:
    """Up to ``count`` fakes, greedily covering as many region kinds and upsampler families as
    possible, with one entire synthesis among them when there is one."""
    family = lambda r: r["upsampler"].split("(")[0].rstrip("0123456789").removesuffix("_ac")  # noqa: E731
    partial = [r for r in rows if r["kind"] == "partial"]
    entire = next((r for r in rows if r["kind"] == "entire"), None)
    chosen: list[dict] = []
    while partial and len(chosen) < count - (entire is not None):
        props, fams = {r["property"] for r in chosen}, {family(r) for r in chosen}
        best = max(partial, key=lambda r: (r["property"] not in props) + (family(r) not in fams))
        chosen.append(best)
        partial.remove(best)
    return chosen + ([entire] if entire is not None else [])


def _fit(image: np.ndarray) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.full((TILE, TILE, 3), 32, np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    tile[y:y + small.shape[0], x:x + small.shape[1]] = small
    return tile


def label_box(tile: np.ndarray, text: str, scale: float = 0.4) -> np.ndarray:
    """``tile`` with ``text`` in white on a dark box at its bottom left: readable over light images
    too (an outline alone is not, at this size)."""
    import cv2

    out = np.ascontiguousarray(tile).copy()
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y1 = out.shape[0] - 2
    y0, x1 = max(0, y1 - th - base - 4), min(out.shape[1], tw + 8)
    out[y0:y1, 0:x1] = (out[y0:y1, 0:x1].astype(np.float32) * 0.25).astype(np.uint8)  # 75 % black under the text
    cv2.putText(out, text, (4, y1 - base - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    return label_box(tile, text, 0.4)


def _row(root: Path, r: dict, model_input: int) -> np.ndarray:
    import cv2

    fake = read_rgb(root / r["image"])
    h, w = fake.shape[:2]
    if r["kind"] == "partial":
        real = read_rgb(root / r["real"])
        gt = partial_manipulation_map(real, fake)
        gain = max(1.0, min(8.0, 0.9 / max(float(np.percentile(gt[gt > 0], 99)) if gt.any() else 1.0, 1e-3)))
        gt_text = f"ground truth x{gain:.1f}"
    else:
        real = fake
        gt, gain, gt_text = np.ones((h, w), np.float32), 1.0, "ground truth (all ones)"
    gt_img = np.repeat((np.clip(gt * gain, 0, 1) * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    seen = np.clip(np.rint(resize_bilinear(fake, model_input, model_input)), 0, 255).astype(np.uint8)
    x, y, bw, bh = (int(v) for v in r["box"].split(","))
    cx, cy = (x + bw / 2) * model_input / w, (y + bh / 2) * model_input / h
    z = model_input // 4
    x0, y0 = int(np.clip(cx - z / 2, 0, model_input - z)), int(np.clip(cy - z / 2, 0, model_input - z))
    zoom = cv2.resize(seen[y0:y0 + z, x0:x0 + z], (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    tiles = [
        _label(_fit(real), f"real {w}x{h}" if r["kind"] == "partial" else f"(entire) {w}x{h}"),
        _label(_fit(fake), r["kind"]),
        _label(_fit(gt_img), gt_text),
        _label(zoom, f"model input {model_input}px, 4x zoom"),
    ]
    body = np.concatenate(tiles, axis=1)
    caption = np.full((CAPTION, body.shape[1], 3), 255, np.uint8)
    text = f"{r['image']}  {r['property']}  {r['upsampler']}  edit={r['edit'] or 'none'}  gan_scale={r['gan_scale']}"
    cv2.putText(caption, text[:150], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([caption, body], axis=0)


def write_contact_sheet(root: str | Path, path: str | Path, count: int = 8, model_input: int = 224) -> Path:
    """Write a PNG contact sheet of ``count`` items of the dataset at ``root``; returns its path."""
    import cv2

    root, path = Path(root), Path(path)
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    chosen = pick_rows(rows, count)
    if not chosen:
        raise ValueError(f"{root} has no fakes to show")
    sheet = np.concatenate([_row(root, r, model_input) for r in chosen], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", sheet[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())
    return path
