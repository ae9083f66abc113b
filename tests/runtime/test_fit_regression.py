"""``fit`` analysis reproduces the maps and scores of the runtime before ``native`` existed.

The reference was written by ``tests/data/make_legacy_fit_reference.py`` from the unchanged code of
commit e91334c and that commit's default model (kept as ``tests/data/legacy_fit_model.onnx``).
Tolerance 1e-6 rather than exact equality: the reference was computed on one x86-64 machine, and
ONNX Runtime's convolutions pick different SIMD kernels (and summation orders) on other CPUs;
1e-6 is ~40 ulp at 0.5, far below one 8-bit map level (3.9e-3) and far below any change of rule.
"""

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
MODEL = DATA / "legacy_fit_model.onnx"
REFERENCE = DATA / "legacy_fit_reference.npz"
TOL = 1e-6


def _inputs():
    # the first default model's demo samples (samples/ until issue 21), kept here for this reference
    inputs = [("fake-mouth-000001", str(DATA / "legacy_samples" / "fake-mouth-000001.png")),
              ("fake-entire-000002", str(DATA / "legacy_samples" / "fake-entire-000002.png"))]
    inputs.append(("noise-17x900", np.random.default_rng(13).integers(0, 256, (17, 900, 3), dtype=np.uint8)))
    return inputs


@pytest.mark.parametrize("analysis", [None, "fit"])
def test_fit_reproduces_the_legacy_runtime(analysis):
    from fakelocator.runtime import Locator

    ref = np.load(REFERENCE)
    inputs = _inputs()
    with Locator.load(MODEL, backend="onnxruntime", device="cpu", batch_size=2, workers=1,
                      preprocessor="numpy", pipeline="host", threads=1, analysis=analysis) as loc:
        assert loc.contract.analysis == "fit"  # a model without the field loads as fit
        results = loc.locate([i for _, i in inputs], keep_outputs=True)
    for (name, _), r in zip(inputs, results):
        small, full = ref[name + "/map_small"], ref[name + "/map"]
        step = 1 if full.shape == r.map.shape else 4  # FULL_STEP of the script: large maps are subsampled
        np.testing.assert_allclose(r.outputs["map"], small, rtol=0, atol=TOL, err_msg=name)
        np.testing.assert_allclose(r.map[::step, ::step], full, rtol=0, atol=TOL, err_msg=name)
        assert r.score == pytest.approx(float(ref[name + "/score"]), abs=TOL)
        assert r.tiles == 1
