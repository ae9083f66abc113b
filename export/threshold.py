"""Calibrate a model's decision threshold on held-out scores and write it into the model's files.

CNNDetection's lesson (``shared/notes/data-sources.md``): ranking (AUC/AP) carries over to unseen
generators far better than accuracy at 0.5 does, so the threshold is a property of the model,
measured on a calibration split it never trained on, and stored with it
(``fakelocator.threshold``, ``fakelocator.metadata``) for every consumer to read.

``calibrate_threshold`` picks the score that maximizes balanced accuracy (the mean of real and
fake accuracy; Youden's J) — a split's real/fake ratio does not move it. ``stamp_threshold`` writes
the key into an ``.onnx`` (its ``metadata_props``) or a ``.safetensors`` (its header metadata) in
place, keeping every other key.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import THRESHOLD_KEY, ModelMetadata


def calibrate_threshold(scores, labels) -> tuple[float, dict[str, float]]:
    """(threshold, figures at it): the score ``t`` (call fake when ``score >= t``) with the highest
    balanced accuracy on this split; ties go to the middle of the best run of candidates."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape or not y.any() or y.all():
        raise FakeLocatorError("calibration needs scores and labels of the same length with both classes")
    if not np.isfinite(s).all():
        raise FakeLocatorError("calibration scores must be finite")
    values = np.unique(s)
    # candidates: midpoints between consecutive distinct scores, and the ends
    cands = np.concatenate([[values[0]], (values[:-1] + values[1:]) / 2, [np.nextafter(values[-1], np.inf)]])
    tpr = np.array([(s[y] >= t).mean() for t in cands])
    tnr = np.array([(s[~y] < t).mean() for t in cands])
    bacc = (tpr + tnr) / 2
    best = np.flatnonzero(np.isclose(bacc, bacc.max()))
    i = int(best[len(best) // 2])
    t = float(np.clip(cands[i], 0.0, 1.0))
    return t, {"balanced_accuracy": float(bacc[i]), "real_accuracy": float(tnr[i]), "fake_accuracy": float(tpr[i]),
               "n_real": int((~y).sum()), "n_fake": int(y.sum())}


def stamp_threshold(path: str | Path, threshold: float) -> None:
    """Write ``fakelocator.threshold`` into a model file in place (``.onnx`` or ``.safetensors``)."""
    path = Path(path)
    if not 0.0 <= float(threshold) <= 1.0:
        raise FakeLocatorError(f"threshold must be in [0, 1], got {threshold}")
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".onnx":
        import onnx

        from fakelocator.metadata import props_of, write_metadata

        proto = onnx.load(str(path))
        meta = ModelMetadata.from_props(props_of(proto), source=str(path)).with_threshold(float(threshold))
        write_metadata(proto, meta)
        onnx.save(proto, str(tmp))
    elif path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta[THRESHOLD_KEY] = repr(float(threshold))
        save_file(tensors, str(tmp), metadata=meta)
    else:
        raise FakeLocatorError(f"{path}: can only stamp a threshold into .onnx or .safetensors files")
    os.replace(tmp, path)


def scores_on(model: str | Path, data: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's image scores (``trt-locate`` defaults, onnxruntime on the CPU) and labels
    (1 = partial or entire fake) of a dataset in the shared format (docs/data.md)."""
    from fakelocator.runtime import Locator
    from fakelocator.training.samples import load_samples

    samples = load_samples(data)
    with Locator.load(model, backend="onnxruntime", device="cpu") as loc:
        results = loc.locate([s.image for s in samples])
    return (np.asarray([r.score for r in results], np.float64),
            np.asarray([int(s.kind != "real") for s in samples]))


def main(argv=None) -> int:
    """``python -m fakelocator.export.threshold --model M.onnx --data CALIB [--stamp FILE ...]``"""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m fakelocator.export.threshold", description=main.__doc__)
    p.add_argument("--model", required=True, help="model whose scores are calibrated (.onnx)")
    p.add_argument("--data", required=True, help="calibration split, never trained on (docs/data.md format)")
    p.add_argument("--stamp", nargs="*", default=[], help="model files to write the threshold into")
    args = p.parse_args(argv)
    scores, labels = scores_on(args.model, args.data)
    t, figures = calibrate_threshold(scores, labels)
    for path in args.stamp:
        stamp_threshold(path, t)
    print(json.dumps({"threshold": round(t, 6), **figures, "data": str(args.data), "stamped": args.stamp}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
