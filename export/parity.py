"""Do two runs of the same network agree? (PyTorch vs ONNX Runtime, ONNX Runtime vs TensorRT, fp32 vs fp16.)

A *runner* is anything with a ``name`` and ``__call__(batch) -> {"map", "score"[, "features"]}``
taking a preprocessed (N, 3, h, w) float32 batch. ``compare`` feeds the same cases to a reference
and a candidate runner and reports, per case and output:

- ``map``: max and mean |Δ|, and the cosine similarity (COSS) of the flattened maps;
- ``score``: max |Δ|;
- ``features``: max |Δ| relative to the reference's largest |feature| (the features have no fixed scale).

The cases are random network inputs, random 8-bit images and real photographs (scikit-image's
astronaut, coffee, chelsea and rocket, shipped inside the package) put through the preprocessing
contract, at batch sizes > 1 and 1 (the batch axis is dynamic), plus other sizes when the model's
height and width are dynamic.

Bounds (docs/export.md says how they were measured):

- ``FP32``: an fp32 export on ONNX Runtime vs PyTorch: max |Δmap| ≤ 1e-4;
- ``FP16``: a mixed-precision export vs fp32 PyTorch: COSS ≥ 0.999, max |Δmap| ≤ 1e-2; also used for
  TensorRT FP16 and TF32 engines, for which no measurement exists yet (no TensorRT in this project's
  environments).
- ``INT8``: an INT8 QDQ export vs fp32: COSS ≥ 0.98, max |Δmap| ≤ 0.25, max |Δscore| ≤ 0.1. These cases
  include random network inputs far outside what the model was calibrated on, where 8-bit activations
  clip; the bound catches a broken file, and the accuracy that matters is the export's gate on
  held-out images (``int8_gate.py``), recorded in the file's metadata.

Torch and onnxruntime are imported by the runners that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing, to_network_input
from fakelocator.errors import FakeLocatorError
from fakelocator.model_io import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, REQUIRED_OUTPUTS

REAL_IMAGES = ("astronaut", "coffee", "chelsea", "rocket")


@dataclass(frozen=True)
class Bounds:
    name: str
    map_max_abs: float
    map_min_cosine: float
    score_max_abs: float
    features_max_rel: float


FP32 = Bounds("fp32", map_max_abs=1e-4, map_min_cosine=0.99999, score_max_abs=1e-4, features_max_rel=1e-4)
FP16 = Bounds("fp16", map_max_abs=1e-2, map_min_cosine=0.999, score_max_abs=1e-2, features_max_rel=1e-2)
INT8 = Bounds("int8", map_max_abs=0.25, map_min_cosine=0.98, score_max_abs=0.1, features_max_rel=0.25)
BOUNDS = {"fp32": FP32, "fp16": FP16, "int8": INT8}


def bounds_for(*precisions: str) -> Bounds:
    """The bounds for comparing runs of these precisions ("fp32", "fp16", "tf32", "int8"): the loosest applies."""
    if "int8" in precisions:
        return INT8
    return FP32 if all(p == "fp32" for p in precisions) else FP16


@dataclass(frozen=True)
class Case:
    name: str
    batch: np.ndarray  # (N, 3, h, w) float32 network input


@dataclass(frozen=True)
class Diff:
    output: str
    max_abs: float
    mean_abs: float
    cosine: float | None = None  # maps only
    relative: bool = False  # max_abs is relative to the reference's max |value|


@dataclass
class CaseResult:
    case: str
    shape: tuple[int, ...]
    diffs: dict[str, Diff]
    failures: list[str] = field(default_factory=list)


@dataclass
class ParityReport:
    reference: str
    candidate: str
    bounds: Bounds
    results: list[CaseResult]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[str]:
        return [f"{r.case}: {f}" for r in self.results for f in r.failures]

    def worst(self, output: str, what: str = "max_abs") -> float:
        values = [getattr(r.diffs[output], what) for r in self.results if output in r.diffs]
        if not values:
            return float("nan")
        return min(values) if what == "cosine" else max(values)

    def format(self) -> str:
        b = self.bounds
        lines = [
            f"parity: {self.candidate} vs {self.reference} (bounds {b.name}: max|Δmap| ≤ {b.map_max_abs:g}, "
            f"COSS ≥ {b.map_min_cosine:g}, max|Δscore| ≤ {b.score_max_abs:g}, features rel ≤ {b.features_max_rel:g})",
            f"  {'case':<34} {'shape':<18} {'max|Δmap|':>10} {'mean|Δmap|':>10} {'COSS':>9} {'max|Δscore|':>11} {'feat rel':>9}",
        ]
        for r in self.results:
            m, s, f = r.diffs["map"], r.diffs["score"], r.diffs.get("features")
            shape = "x".join(str(d) for d in r.shape)
            feat = f"{f.max_abs:9.2e}" if f else f"{'-':>9}"
            lines.append(
                f"  {r.case:<34} {shape:<18} {m.max_abs:10.2e} {m.mean_abs:10.2e} {m.cosine:9.6f} {s.max_abs:11.2e} {feat}"
            )
        lines.append("  PASS" if self.passed else "  FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / denom)


def diff_outputs(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], bounds: Bounds) -> tuple[dict[str, Diff], list[str]]:
    """Differences between two outputs dicts and the bounds they break."""
    diffs, failures = {}, []
    for name in REQUIRED_OUTPUTS:
        if name not in got:
            failures.append(f"candidate has no {name!r} output")
            continue
        if got[name].shape != ref[name].shape:
            failures.append(f"{name} shape {got[name].shape} != reference {ref[name].shape}")
            continue
        if not np.isfinite(got[name]).all():
            diffs[name] = Diff(name, float("inf"), float("inf"), cosine=0.0 if name == "map" else None)
            failures.append(f"{name} has NaN or inf")
            continue
        delta = np.abs(got[name].astype(np.float64) - ref[name].astype(np.float64))
        cosine = _cosine(ref[name], got[name]) if name == "map" else None
        diffs[name] = Diff(name, float(delta.max()), float(delta.mean()), cosine=cosine)
    if "map" in diffs and diffs["map"].max_abs > bounds.map_max_abs:
        failures.append(f"max|Δmap| {diffs['map'].max_abs:.2e} > {bounds.map_max_abs:g}")
    if "map" in diffs and diffs["map"].cosine < bounds.map_min_cosine:
        failures.append(f"COSS {diffs['map'].cosine:.6f} < {bounds.map_min_cosine:g}")
    if "score" in diffs and diffs["score"].max_abs > bounds.score_max_abs:
        failures.append(f"max|Δscore| {diffs['score'].max_abs:.2e} > {bounds.score_max_abs:g}")
    if "features" in ref and "features" in got and ref["features"].shape == got["features"].shape:
        scale = float(np.abs(ref["features"]).max()) or 1.0
        delta = np.abs(got["features"].astype(np.float64) - ref["features"].astype(np.float64))
        diffs["features"] = Diff("features", float(delta.max()) / scale, float(delta.mean()) / scale, relative=True)
        if not diffs["features"].max_abs <= bounds.features_max_rel:
            failures.append(f"features relative max|Δ| {diffs['features'].max_abs:.2e} > {bounds.features_max_rel:g}")
    return diffs, failures


def compare(reference, candidate, cases: Sequence[Case], bounds: Bounds) -> ParityReport:
    """Run every case through both runners and compare their outputs."""
    results = []
    for case in cases:
        ref = reference(case.batch)
        got = candidate(case.batch)
        diffs, failures = diff_outputs(ref, got, bounds)
        results.append(CaseResult(case.name, tuple(case.batch.shape), diffs, failures))
    return ParityReport(reference.name, candidate.name, bounds, results)


# ---- inputs -------------------------------------------------------------------------------------


def real_images() -> list[tuple[str, np.ndarray]]:
    """scikit-image's bundled RGB photographs (read from the installed package, never downloaded)."""
    from skimage import data

    return [(name, getattr(data, name)()) for name in REAL_IMAGES]


def standard_cases(
    contract: Preprocessing,
    *,
    batch: int = 3,
    seed: int = 0,
    real: bool = True,
    extra_sizes: Sequence[tuple[int, int]] = (),
    max_batch: int | None = None,
) -> list[Case]:
    """Random inputs, random images and real photographs at the contract's size; random inputs at ``extra_sizes``."""
    rng = np.random.default_rng(seed)
    h, w = contract.size
    n = max(1, batch if max_batch is None else min(batch, max_batch))
    cases = [Case(f"random normal N={n}", rng.standard_normal((n, 3, h, w)).astype(np.float32))]
    pictures = rng.integers(0, 256, (n, 2 * h + 3, 2 * w - 5, 3), dtype=np.uint8)
    cases.append(Case(f"random 8-bit images N={n}", _preprocess(pictures, contract)))
    if real:
        photos = real_images()
        for start in range(0, len(photos), n):
            chunk = photos[start:start + n]
            cases.append(Case("photos: " + ",".join(name for name, _ in chunk), _preprocess([p for _, p in chunk], contract)))
    if n > 1:
        cases.append(Case("random normal N=1", rng.standard_normal((1, 3, h, w)).astype(np.float32)))
    for sh, sw in extra_sizes:
        cases.append(Case(f"random normal N={n} at {sh}x{sw}", rng.standard_normal((n, 3, sh, sw)).astype(np.float32)))
    return cases


def _preprocess(images, contract: Preprocessing) -> np.ndarray:
    return np.stack([to_network_input(np.ascontiguousarray(im), contract, "RGB") for im in images])


# ---- runners ------------------------------------------------------------------------------------


def torch_runner(model, name: str = "pytorch") -> "BackendRunner":
    """A ``FakeLocatorNet`` in fp32 on the CPU, on the runtime's torch backend: the reference."""
    import copy

    from fakelocator.runtime.backends.torch import TorchBackend

    net = copy.deepcopy(model).float().cpu().eval()
    return BackendRunner(TorchBackend("(in memory)", device="cpu", cuda_graphs=False, net=net), name=name)


def onnxruntime_runner(path: str | Path, name: str | None = None, *, device: str = "cpu") -> "BackendRunner":
    """An ONNX file on the runtime's onnxruntime backend (CPU by default, all graph optimizations on, as ``trt-locate`` runs it)."""
    from fakelocator.runtime.backends import onnxruntime

    ok, reason = onnxruntime.available()
    if not ok:
        raise FakeLocatorError(f"checking {path} on ONNX Runtime: {reason} (or export with --no-check)")
    backend = onnxruntime.load(str(path), device=device)
    return BackendRunner(backend, name=name or f"onnxruntime ({Path(path).name})")


class BackendRunner:
    """A ``fakelocator.runtime`` backend (torch, onnxruntime, TensorRT) as a runner: its public ``infer``.

    Batches larger than the backend takes are split; smaller than an engine profile's minimum, padded
    with copies of the last image (and the padding dropped from the outputs).
    """

    def __init__(self, backend, name: str | None = None):
        self.backend = backend
        self.name = name or f"{backend.name} ({Path(backend.info.path).name})"
        profile = getattr(backend, "profile", None)
        self.min_batch = profile.min[0] if profile is not None else 1

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        step = self.backend.max_batch or len(batch)
        parts = []
        for i in range(0, len(batch), step):
            chunk = batch[i:i + step]
            short = self.min_batch - len(chunk)
            if short > 0:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)])
            out = self.backend.infer(chunk)
            parts.append({k: v[: len(v) - max(short, 0)] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class OneByOne:
    """Runs a runner on each item of a batch separately: compared with the batched run, it checks the batch axis."""

    def __init__(self, runner: Callable):
        self.runner = runner
        self.name = f"{runner.name}, one image at a time"

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        parts = [self.runner(batch[i:i + 1]) for i in range(len(batch))]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---- by file ------------------------------------------------------------------------------------



def precision_of(path: str | Path) -> str:
    """"fp32", "fp16" or "tf32" (an fp32 engine allowed to use TF32): what bounds a comparison needs."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from fakelocator.runtime.onnx_info import read_onnx_info

        return read_onnx_info(path).precision
    if suffix in ENGINE_SUFFIXES:
        from fakelocator.runtime.engine_sidecar import EngineSidecar, sidecar_path

        sidecar = EngineSidecar.read(sidecar_path(path))
        return "tf32" if sidecar.precision == "fp32" and sidecar.options.tf32 else sidecar.precision
    return "fp32"


def runner_for(path: str | Path, *, device: str = "cuda:0", batch_size: int = 8):
    """A runner for a checkpoint (PyTorch, CPU), an ONNX file (ONNX Runtime, CPU) or an engine (TensorRT)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FakeLocatorError(f"model {path}: no such file")
    if suffix in CHECKPOINT_SUFFIXES:
        from fakelocator.training.checkpoint import load_model

        model, _ = load_model(path)
        return torch_runner(model, name=f"pytorch ({path.name})")
    if suffix == ".onnx":
        return onnxruntime_runner(path)
    if suffix in ENGINE_SUFFIXES:
        from fakelocator.runtime.backends.tensorrt import load

        return BackendRunner(load(str(path), device=device, batch_size=batch_size))
    raise FakeLocatorError(
        f"model {path}: expected a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}), an .onnx or an engine ({', '.join(ENGINE_SUFFIXES)})"
    )
