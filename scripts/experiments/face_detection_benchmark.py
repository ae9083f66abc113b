"""Face detectors compared on frames composed from the photos that installed packages ship.

    python scripts/experiments/face_detection_benchmark.py --threads 2 --out docs/benchmarks/face_detection.json

The installed packages ship two photos with a face we know the box of (scikit-image's astronaut,
matplotlib's Grace Hopper) and no group photo, so every test frame is composed (1920 × 1080):

- **group**: six heads (the two photos, mirrored and at three sizes: 0.10–0.17 of the frame's
  height) pasted in two rows on each of five face-free backgrounds (coffee, rocket, chelsea,
  Hubble field, brick);
- **rotated**: one head (face 0.2 of the height) turned in the image plane by ±15°, ±30°, ±45°, 90°;
- **yaw**: one head squeezed by a perspective warp toward one side, as a face turned by 30°, 45°,
  60° would be foreshortened (a synthetic stand-in for profiles: the photos have no profile views,
  and a warp does not hide the far eye as a real profile does);
- **small**: one frontal face of 0.03, 0.05, 0.08, 0.12 of the height.

A detection hits a face when IoU ≥ 0.3 with its (rotated: the rotated box's bounding) box; others
are false detections. Timing: each detector on every group frame, median and max ms, with
onnxruntime and OpenCV limited to ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

W, H = 1920, 1080
# Face boxes (x0, y0, x1, y1) read off the photos (tests/runtime/test_faces.py).
FACES = {"astronaut": (174, 66, 270, 162), "grace_hopper": (166, 123, 367, 324)}


def photos() -> dict[str, np.ndarray]:
    import cv2
    import matplotlib
    from skimage import data

    hopper = cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))[:, :, ::-1]
    return {"astronaut": data.astronaut(), "grace_hopper": np.ascontiguousarray(hopper)}


def backgrounds() -> list[np.ndarray]:
    import cv2
    from skimage import data

    out = []
    for im in (data.coffee(), data.rocket(), data.chelsea(), data.hubble_deep_field(), data.brick()):
        im = im if im.ndim == 3 else np.dstack([im] * 3)
        out.append(cv2.resize(np.ascontiguousarray(im[:, :, :3]), (W, H), interpolation=cv2.INTER_AREA))
    return out


def head(photo: np.ndarray, box, face_height: float, *, flip: bool = False):
    """The head-and-shoulders patch around ``box`` scaled so the face is ``face_height`` px; (patch, box in it)."""
    import cv2

    x0, y0, x1, y1 = box
    fw, fh = x1 - x0, y1 - y0
    h, w = photo.shape[:2]
    cx0, cy0 = max(0, int(x0 - 0.6 * fw)), max(0, int(y0 - 0.5 * fh))
    cx1, cy1 = min(w, int(x1 + 0.6 * fw)), min(h, int(y1 + 0.8 * fh))
    patch = photo[cy0:cy1, cx0:cx1]
    s = face_height / fh
    patch = cv2.resize(patch, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    fb = np.array([x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0], float) * s
    if flip:
        patch = patch[:, ::-1]
        fb = np.array([patch.shape[1] - fb[2], fb[1], patch.shape[1] - fb[0], fb[3]])
    return np.ascontiguousarray(patch), fb


def paste(frame, patch, x, y, box):
    h, w = patch.shape[:2]
    frame[y:y + h, x:x + w] = patch
    return (box[0] + x, box[1] + y, box[2] + x, box[3] + y)


def rotate(patch, box, degrees: float):
    """Patch rotated about the face centre (border: the patch's edge colours); the face's rotated box's bounds."""
    import cv2

    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    h, w = patch.shape[:2]
    m = cv2.getRotationMatrix2D((cx, cy), degrees, 1.0)
    out = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]], float)
    moved = corners @ m[:, :2].T + m[:, 2]
    # The face itself (an ellipse inscribed in its box) spans about the midway between box and bounds.
    lo, hi = moved.min(0), moved.max(0)
    c = np.array([cx, cy])
    half = (np.array([box[2] - box[0], box[3] - box[1]]) / 2 + (hi - lo) / 2) / 2
    return out, np.concatenate([c - half, c + half])


def yaw(patch, box, degrees: float):
    """A perspective squeeze of the patch: the side toward which the face turns shrinks (height ×
    cos-like foreshortening), the face box narrows by cos(angle)."""
    import cv2

    h, w = patch.shape[:2]
    c = math.cos(math.radians(degrees))
    far = 1 - 0.35 * math.sin(math.radians(degrees))  # the far side's height
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    nw = w * c
    dst = np.float32([[0, 0], [nw, h * (1 - far) / 2], [nw, h - h * (1 - far) / 2], [0, h]])
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(patch, m, (int(math.ceil(nw)), h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = cv2.perspectiveTransform(np.float32([[[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]]), m)[0]
    return out, np.concatenate([pts.min(0), pts.max(0)])


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def score(found, truths) -> tuple[int, int]:
    """(faces hit, false detections)."""
    hits = sum(any(iou(t, f.box) >= 0.3 for f in found) for t in truths)
    false = sum(not any(iou(t, f.box) >= 0.3 for t in truths) for f in found)
    return hits, false


def group_frames(bgs, ph):
    rng = np.random.default_rng(0)
    frames = []
    layout = [("astronaut", 0.17, False), ("grace_hopper", 0.14, False), ("astronaut", 0.12, True),
              ("grace_hopper", 0.10, True), ("astronaut", 0.10, False), ("grace_hopper", 0.16, True)]
    for bg in bgs:
        frame, truths = bg.copy(), []
        for i, (name, frac, flip) in enumerate(layout):
            patch, box = head(ph[name], FACES[name], frac * H, flip=flip)
            col, row = i % 3, i // 3
            x = int(80 + col * 620 + rng.integers(0, max(1, 560 - patch.shape[1])))
            y = int(40 + row * 520 + rng.integers(0, max(1, 500 - patch.shape[0])))
            truths.append(paste(frame, patch[: H - y, : W - x], x, y, box))
        frames.append((frame, truths))
    return frames


def single_frames(bgs, ph, make):
    rng = np.random.default_rng(1)
    out = []
    for bg in bgs:
        for name in FACES:
            patch, box = make(ph[name], FACES[name])
            x = int(rng.integers(0, W - patch.shape[1]))
            y = int(rng.integers(0, H - patch.shape[0]))
            frame = bg.copy()
            out.append((frame, [paste(frame, patch, x, y, box)]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--detectors", nargs="+", default=["blazeface", "blazeface-notiles", "blazeface-min0.03", "blazeface-short", "lbp"])
    p.add_argument("--sets", nargs="+", help="only these frame sets (e.g. group: the timing); default: all")
    args = p.parse_args()
    import cv2

    cv2.setNumThreads(args.threads)
    from fakelocator.runtime.blazeface import BlazeFaceDetector
    from fakelocator.runtime.face_detectors import LBPCascadeDetector

    build = {
        "blazeface": lambda: BlazeFaceDetector("full", device="cpu", threads=args.threads),
        "blazeface-notiles": lambda: BlazeFaceDetector("full", device="cpu", threads=args.threads, tiles=False),
        "blazeface-min0.03": lambda: BlazeFaceDetector("full", device="cpu", threads=args.threads, min_size=0.03),
        "blazeface-short": lambda: BlazeFaceDetector("short", device="cpu", threads=args.threads),
        "lbp": lambda: LBPCascadeDetector(),
    }
    bgs, ph = backgrounds(), photos()
    sets = {"group": group_frames(bgs, ph)}
    for deg in (15, -15, 30, -30, 45, -45, 90):
        sets[f"rotated {deg:+d}"] = single_frames(bgs, ph, lambda im, b, d=deg: rotate(*head(im, b, 0.2 * H), d))
    for deg in (30, 45, 60):
        sets[f"yaw {deg}"] = single_frames(bgs, ph, lambda im, b, d=deg: yaw(*head(im, b, 0.2 * H), d))
    for frac in (0.03, 0.05, 0.08, 0.12):
        sets[f"small {frac}"] = single_frames(bgs, ph, lambda im, b, f=frac: head(im, b, f * H))
    empty = [(bg, []) for bg in bgs]
    sets["no face"] = empty
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets}

    results = {}
    for name in args.detectors:
        det = build[name]()
        det.detect(bgs[0], "RGB")  # warm-up
        row = {}
        for key, frames in sets.items():
            hits = faces = false = 0
            times = []
            for frame, truths in frames:
                t0 = time.perf_counter()
                found = det.detect(frame, "RGB")
                times.append(1000 * (time.perf_counter() - t0))
                h, f = score(found, truths)
                hits, faces, false = hits + h, faces + len(truths), false + f
            row[key] = {"found": hits, "faces": faces, "false": false}
            if key == "group":
                row["ms_per_1080p_frame"] = {"median": float(np.median(times)), "max": float(np.max(times))}
        results[name] = row
        print(name, json.dumps(row))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"threads": args.threads, "frame": [W, H], "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
