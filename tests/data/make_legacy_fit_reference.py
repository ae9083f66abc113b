"""Write the ``fit`` regression reference: the shipped model of commit e91334c and its outputs.

Issue 13 adds the ``native`` analysis and keeps ``fit`` "bit for bit for models that were made for
it". To hold that to the code that existed before, this script runs the *unchanged* runtime of
commit e91334c (checked out from git into a temporary folder, imported instead of the working
tree) with the default model of that commit, and stores:

- ``tests/data/legacy_fit_model.onnx``: that commit's ``fakelocator/weights/default/model.onnx``
  (a fit model with no ``analysis`` field in its contract, ~2.5 MB), kept because the shipped
  default model is replaced by a native one;
- ``tests/data/legacy_fit_reference.npz``: for each input below, the network-resolution ``map``
  (224 × 224), the full-resolution map (every 4th row and column of the large ones) and the score, from ``Locator.load(...).locate(...)`` with
  the onnxruntime backend on the CPU (1 thread) and the numpy preprocessor (the contract's reference
  arithmetic; the native library is optional and would add its own float rounding).

``tests/runtime/test_fit_regression.py`` compares today's runtime against it. Run from the
repository root (needs git and the repository's history)::

    .venv/bin/python tests/data/make_legacy_fit_reference.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

COMMIT = "e91334c"
ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent
MODEL = DATA / "legacy_fit_model.onnx"
REFERENCE = DATA / "legacy_fit_reference.npz"
#: Inputs: two demo samples of different aspect ratios, and a generated array of an awkward size.
SAMPLES = ("samples/fake-mouth-000001.png", "samples/fake-entire-000002.png")
GENERATED = {"noise-17x900": (17, 900, 13)}  # name: (height, width, seed), uniform BGR noise
#: Full-resolution maps over 50k pixels are stored at every FULL_STEP-th row and column (keeps the
#: file small; every stored pixel is still compared exactly where the runtime computes it).
FULL_STEP = 4

# Runs inside the old checkout: imports *its* fakelocator, writes the reference.
_CHILD = r"""
import sys
import numpy as np
import fakelocator
from fakelocator.runtime import Locator
assert fakelocator.__file__.startswith(sys.argv[1]), fakelocator.__file__
model, out, root = sys.argv[2], sys.argv[3], sys.argv[4]
samples = sys.argv[5].split(",")
generated = eval(sys.argv[6])
step = int(sys.argv[7])
arrays = {}
with Locator.load(model, backend="onnxruntime", device="cpu", batch_size=2, workers=1,
                  preprocessor="numpy", pipeline="host", threads=1) as loc:
    inputs = [(s.rsplit("/", 1)[-1].rsplit(".", 1)[0], root + "/" + s) for s in samples]
    for name, (h, w, seed) in generated.items():
        inputs.append((name, np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)))
    for (name, item), r in zip(inputs, loc.locate([i for _, i in inputs], keep_outputs=True)):
        arrays[name + "/map_small"] = r.outputs["map"]
        arrays[name + "/map"] = r.map[::step, ::step] if r.map.size > 50000 else r.map
        arrays[name + "/score"] = np.float32(r.score)
np.savez_compressed(out, **arrays)
print("wrote", out, sorted(arrays))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = Path(tmp) / "old.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), COMMIT], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(old, filter="data")
        # The package maps top-level folders onto sub-packages (setup.py); mirror that with links.
        for sub in ("runtime", "training", "export", "evaluation", "benchmarks"):
            os.symlink(old / sub, old / "fakelocator" / sub)
        MODEL.write_bytes((old / "fakelocator" / "weights" / "default" / "model.onnx").read_bytes())
        env = dict(os.environ, PYTHONPATH=str(old), FAKELOCATOR_NATIVE_LIB="off", OMP_NUM_THREADS="1")
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(old), str(MODEL), str(REFERENCE), str(ROOT),
             ",".join(SAMPLES), repr(GENERATED), str(FULL_STEP)],
            check=True, env=env, cwd=tmp,
        )


if __name__ == "__main__":
    main()
