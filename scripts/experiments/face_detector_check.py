"""A small sanity check of the built-in LBP face detector on frames built from photos that packages ship.

    python scripts/experiments/face_detector_check.py --size 1280 720
    python scripts/experiments/face_detector_check.py --size 1920 1080

Frames: 14 face-free scikit-image photos (coffee, rocket, cat, Hubble field, textures, text...)
resized to the frame size; each is searched once as it is (any detection is false), then with
scikit-image's astronaut and matplotlib's Grace Hopper photo pasted at a random place at face heights
of 0.12, 0.2 and 0.35 of the frame (a detection with IoU >= 0.3 to the face is a hit). Prints hits,
misses, false detections and the time per frame. Not a benchmark of face detection: two faces.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def main() -> None:
    import cv2
    import matplotlib
    from skimage import data

    from fakelocator.runtime.face_detectors import LBPCascadeDetector

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, nargs=2, default=(1280, 720), metavar=("W", "H"))
    p.add_argument("--min-size", type=float, default=0.1)
    p.add_argument("--step-ratio", type=float, default=1.25)
    p.add_argument("--scale-factor", type=float, default=1.15)
    args = p.parse_args()
    width, height = args.size
    detector = LBPCascadeDetector(min_size=args.min_size, step_ratio=args.step_ratio, scale_factor=args.scale_factor)

    hopper = cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))[:, :, ::-1]
    faces = {  # photo, face box (x0, y0, x1, y1)
        "astronaut": (data.astronaut(), (174, 66, 270, 162)),
        "grace_hopper": (np.ascontiguousarray(hopper), (166, 123, 367, 324)),
    }
    gray = [data.brick(), data.grass(), data.gravel(), data.moon(), data.text(), data.clock(), data.coins(), data.page(),
            data.horse()]
    backgrounds = [data.coffee(), data.rocket(), data.chelsea(), data.hubble_deep_field(), data.immunohistochemistry()]
    backgrounds += [np.dstack([g.astype(np.uint8) * (255 if g.dtype == bool else 1)] * 3) for g in gray]

    rng = np.random.default_rng(0)
    hits = misses = false = 0
    times = []
    for background in backgrounds:
        background = cv2.resize(np.ascontiguousarray(background[:, :, :3]), (width, height))
        t0 = time.perf_counter()
        false += len(detector.detect(background, "RGB"))
        times.append(time.perf_counter() - t0)
        for name, (photo, box) in faces.items():
            for fraction in (0.12, 0.2, 0.35):
                scale = fraction * height / (box[3] - box[1])
                small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                if small.shape[0] > height or small.shape[1] > width:
                    continue
                y, x = int(rng.integers(0, height - small.shape[0] + 1)), int(rng.integers(0, width - small.shape[1] + 1))
                frame = background.copy()
                frame[y:y + small.shape[0], x:x + small.shape[1]] = small
                truth = (x + box[0] * scale, y + box[1] * scale, x + box[2] * scale, y + box[3] * scale)
                t0 = time.perf_counter()
                found = detector.detect(np.ascontiguousarray(frame[:, :, ::-1]), "BGR")
                times.append(time.perf_counter() - t0)
                overlaps = [iou(truth, f.box) for f in found]
                hit = any(o >= 0.3 for o in overlaps)
                hits, misses = hits + hit, misses + (not hit)
                false += sum(o < 0.3 for o in overlaps)
    print(f"{width}x{height}: {hits} faces found, {misses} missed, {false} false detections; "
          f"{1000 * np.median(times):.0f} ms per frame (median), {1000 * max(times):.0f} ms max, {len(times)} frames")


if __name__ == "__main__":
    main()
