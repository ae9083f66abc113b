"""MediaPipe's own results on the photos that installed packages ship, stored as small test data,
so the tests need no mediapipe:

- ``tests/data/faces/blazeface_reference.json``: BlazeFace boxes (short and full range, MediaPipe's
  defaults: threshold 0.5) for the converted detector's tests;
- ``tests/data/faces/mesh_<photo>.json``: FaceMesh's 478 points (refined lips, eyes, irises; x, y
  in pixels, z relative) and the selfie-segmentation person mask as a run-length code, for the
  tests of the mesh face parser (``fakelocator.training.attention.mesh``, which runs the converted
  468-point mesh and selfie models).

Run in the side virtualenv of ``convert_blazeface.py`` (mediapipe 0.10.14); the photos are read
from the project's environment (``--site``: its site-packages, where scikit-image and matplotlib
are installed):

    /work/venvs/mp/bin/python scripts/mediapipe/references.py --site /work/main/.venv/lib/python3.11/site-packages
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: name → file under site-packages: the bundled photos with faces (training/synth/photos.py).
PHOTOS = {
    "astronaut": "skimage/data/astronaut.png",
    "grace_hopper": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
}


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def blazeface_boxes(rgb: np.ndarray, model_selection: int) -> list[dict]:
    import mediapipe as mp

    h, w = rgb.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=model_selection, min_detection_confidence=0.5) as fd:
        result = fd.process(rgb)
    out = []
    for d in result.detections or ():
        b = d.location_data.relative_bounding_box
        out.append({"box": [b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h],
                    "score": float(d.score[0])})
    return out


def rle(mask: np.ndarray) -> list[int]:
    """Run lengths of a bool mask in row-major order, starting with a run of False."""
    flat = np.concatenate([[False], mask.reshape(-1), [not mask.reshape(-1)[-1]]])
    changes = np.flatnonzero(flat[1:] != flat[:-1])
    return np.diff(np.concatenate([[0], changes])).astype(int).tolist()


def mesh(rgb: np.ndarray) -> dict:
    import mediapipe as mp

    h, w = rgb.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as fm:
        result = fm.process(rgb)
    if not result.multi_face_landmarks:
        raise SystemExit("no face mesh found")
    points = [[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark]
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        person = seg.process(rgb).segmentation_mask > 0.5
    return {"size": [w, h], "landmarks": np.round(points, 2).tolist(), "person_rle": rle(person)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", type=Path, required=True, help="site-packages holding scikit-image and matplotlib")
    args = p.parse_args(argv)
    import mediapipe

    boxes = {"mediapipe": mediapipe.__version__, "photos": {}}
    out_dir = ROOT / "tests" / "data" / "faces"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rel in PHOTOS.items():
        rgb = read_rgb(args.site / rel)
        boxes["photos"][name] = {"file": rel, "short": blazeface_boxes(rgb, 0), "full": blazeface_boxes(rgb, 1)}
        record = {"photo": rel, "mediapipe": mediapipe.__version__, **mesh(rgb)}
        (out_dir / f"mesh_{name}.json").write_text(json.dumps(record, separators=(",", ":")) + "\n")
        print(name, {k: len(v) for k, v in boxes["photos"][name].items() if k != "file"})
    (out_dir / "blazeface_reference.json").write_text(json.dumps(boxes, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
