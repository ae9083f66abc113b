"""The accuracy gate of an INT8 export: does the quantized model lose what the fp32 one finds?

Both files run through the runtime's ``Locator`` on the CPU (ONNX Runtime, the model's own analysis:
tiles at native scale for a ``native`` model), on a held-out set they were not calibrated on, and
are scored against its ground truth with the evaluation's metrics (``evaluation.metrics``):

- **pixel AUC** of each manipulated image's map against its Eq. 7 ground truth binarized at 0.1
  (images with both manipulated and untouched pixels), averaged;
- **COSS** of each manipulated image's map against its Eq. 7 ground truth, averaged;
- **detection AUC** of the image scores, manipulated vs real;
- and int8 against fp32 directly: mean |Δmap| and COSS of the two maps, max |Δscore|, and how many
  labels flip at the model's threshold.

``GateBounds`` (docs/export.md, "INT8", says why these values): the quantized model may lose at
most 0.01 pixel AUC, 0.01 detection AUC and 0.02 COSS, its maps may differ from fp32's by 0.03 on
average, and 99 % of its scores by at most 0.05 (the 99th percentile of |Δscore|: the maximum is
reported but not bounded, as it grows with the size of the set: 0.03 on 153 images, 0.07 on 367 for
the default model, whose metrics did not move). Labels that flip are counted and reported; a flip
needs a score near the threshold, and what flips matter for is the detection AUC, which is bounded. A drop is fp32 − int8,
measured on the same images (paired), so it carries none of the sampling noise of the metric
itself: on the default gate set (~130 images) a detection AUC has a standard error of about 0.03,
and a drop of 0.01 is already less than a third of that.

The default held-out set is ``training.synth.native_set`` with the families the model never
trained on (its provenance's ``stream.exclude``; every family when it records none), images of
256 to 512 px, a seed of its own: it shares nothing with the calibration inputs.
"""

from __future__ import annotations

import csv
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError

DEFAULT_GATE_IMAGES = 96  # native-set items (a partial edit adds its real image too: ~130 images)
DEFAULT_GATE_SEED = 2026
DEFAULT_GATE_SIZES = (256, 384, 512)


@dataclass(frozen=True)
class GateBounds:
    """How much an INT8 model may lose against its fp32 source (module docstring)."""

    pixel_auc_drop: float = 0.01
    detection_auc_drop: float = 0.01
    coss_drop: float = 0.02
    map_mean_abs: float = 0.03
    score_p99_abs: float = 0.05


@dataclass(frozen=True)
class GateItem:
    """One held-out image: uint8 (H, W, 3) RGB, its Eq. 7 ground truth (None for a real image), its label."""

    name: str
    image: np.ndarray
    gt: np.ndarray | None
    label: int
    family: str = ""


@dataclass(frozen=True)
class GateSetConfig:
    images: int = DEFAULT_GATE_IMAGES
    seed: int = DEFAULT_GATE_SEED
    sizes: tuple[int, ...] = DEFAULT_GATE_SIZES
    families: tuple[str, ...] = ()  # empty: every family


@dataclass
class GateReport:
    description: str  # what the set is
    n_images: int
    n_manipulated: int
    fp32: dict[str, float]  # pixel_auc, coss, detection_auc
    int8: dict[str, float]
    agreement: dict[str, float]  # map_mean_abs, map_coss_mean/min, score_p99_abs/max_abs/mean_abs, label_flips/_rate
    bounds: GateBounds
    threshold: float
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        clean = lambda d: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}  # noqa: E731
        return {
            "set": self.description, "images": self.n_images, "manipulated": self.n_manipulated,
            "fp32": clean(self.fp32), "int8": clean(self.int8), "agreement": clean(self.agreement),
            "bounds": asdict(self.bounds), "threshold": self.threshold, "passed": self.passed, "failures": list(self.failures),
        }

    def format(self) -> str:
        return format_gate(self.to_dict())


def format_gate(d: dict) -> str:
    """The gate's figures as ``export onnx --int8`` and ``export check`` print them (from ``to_dict()``)."""
    f = lambda v, n=4: "n/a" if v is None else f"{v:.{n}f}"  # noqa: E731
    b, a = d["bounds"], d["agreement"]
    lines = [f"accuracy gate: int8 vs fp32 on {d['set']} ({d['images']} images, {d['manipulated']} manipulated)",
             f"  {'':<16}{'fp32':>8}{'int8':>8}{'drop':>8}{'bound':>8}"]
    for key, label, bound in (("pixel_auc", "pixel AUC", b["pixel_auc_drop"]), ("coss", "COSS", b["coss_drop"]),
                              ("detection_auc", "detection AUC", b["detection_auc_drop"])):
        x, y = d["fp32"].get(key), d["int8"].get(key)
        drop = None if x is None or y is None else x - y
        lines.append(f"  {label:<16}{f(x):>8}{f(y):>8}{f(drop):>8}{bound:>8g}")
    lines.append(f"  maps: mean |Δ| {f(a.get('map_mean_abs'))} (bound {b['map_mean_abs']:g}), COSS int8 vs fp32 "
                 f"mean {f(a.get('map_coss_mean'))} min {f(a.get('map_coss_min'))}")
    lines.append(f"  scores: |Δ| p99 {f(a.get('score_p99_abs'))} (bound {b['score_p99_abs']:g}), max "
                 f"{f(a.get('score_max_abs'))}, mean {f(a.get('score_mean_abs'))}; labels flipped at "
                 f"{d['threshold']:g}: {a.get('label_flips')} of {d['images']}")
    lines.append("  PASS" if d["passed"] else "  FAIL: " + "; ".join(d["failures"]))
    return "\n".join(lines)


# ---- the held-out set -----------------------------------------------------------------------------


def heldout_set(config: GateSetConfig) -> tuple[list[GateItem], str]:
    """The default gate set, generated (``native_set``) in a temporary folder and read back; (items, description)."""
    from fakelocator.training.groundtruth import partial_manipulation_map
    from fakelocator.training.synth.native_set import NativeSetConfig, write_native_set
    from fakelocator.training.synth.photos import read_rgb

    with tempfile.TemporaryDirectory(prefix="fakelocator-int8-gate-") as tmp:
        write_native_set(tmp, NativeSetConfig(n=config.images, seed=config.seed, families=tuple(config.families),
                                              sizes=tuple(config.sizes)))
        root = Path(tmp)
        with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        items = []
        for row in rows:
            image = read_rgb(root / row["image"])
            if row["kind"] == "real":
                items.append(GateItem(row["image"], image, None, 0))
            elif row["kind"] == "entire":
                items.append(GateItem(row["image"], image, np.ones(image.shape[:2], np.float32), 1, row["family"]))
            else:
                gt = partial_manipulation_map(read_rgb(root / row["real"]), image)
                items.append(GateItem(row["image"], image, gt, 1, row["family"]))
    families = ", ".join(config.families) if config.families else "every family"
    sizes = "/".join(str(s) for s in config.sizes)
    return items, f"a generated held-out set ({families}; {sizes} px; seed {config.seed})"


# ---- the gate -------------------------------------------------------------------------------------


def _run(path: Path, items: list[GateItem], threshold: float, batch: int) -> tuple[list[np.ndarray], np.ndarray]:
    from fakelocator.runtime import Locator

    maps, scores = [], []
    with Locator.load(str(path), backend="onnxruntime", device="cpu", threshold=threshold, batch_size=batch) as locator:
        for start in range(0, len(items), batch):
            for r in locator.locate([it.image for it in items[start:start + batch]], color_order="RGB"):
                maps.append(r.map)
                scores.append(r.score)
    return maps, np.asarray(scores, np.float64)


def _quality(maps: list[np.ndarray], scores: np.ndarray, items: list[GateItem]) -> dict[str, float]:
    from fakelocator.evaluation.metrics import auc, coss, pixel_metrics

    fakes = [i for i, it in enumerate(items) if it.gt is not None]
    pixel = [pixel_metrics(maps[i], items[i].gt)["pixel_auc"] for i in fakes]
    pixel = [v for v in pixel if not math.isnan(v)]
    labels = np.asarray([it.label for it in items])
    both = labels.min() != labels.max()
    return {
        "pixel_auc": float(np.mean(pixel)) if pixel else math.nan,
        "coss": float(np.mean([coss(maps[i], items[i].gt) for i in fakes])) if fakes else math.nan,
        "detection_auc": auc(scores, labels) if both else math.nan,
    }


def run_gate(fp32_path: str | Path, int8_path: str | Path, items: list[GateItem], *, description: str,
             bounds: GateBounds = GateBounds(), threshold: float = 0.5, batch: int = 8) -> GateReport:
    """Run both models over ``items`` and check the int8 one against ``bounds``."""
    from fakelocator.evaluation.metrics import coss

    if not items:
        raise FakeLocatorError("the accuracy gate needs at least one held-out image")
    ref_maps, ref_scores = _run(Path(fp32_path), items, threshold, batch)
    q_maps, q_scores = _run(Path(int8_path), items, threshold, batch)
    ref, got = _quality(ref_maps, ref_scores, items), _quality(q_maps, q_scores, items)
    map_abs = [float(np.abs(a - b).mean()) for a, b in zip(ref_maps, q_maps)]
    map_cos = [coss(a, b) for a, b in zip(ref_maps, q_maps)]
    flips = int(np.sum((ref_scores >= threshold) != (q_scores >= threshold)))
    agreement = {
        "map_mean_abs": float(np.mean(map_abs)), "map_coss_mean": float(np.mean(map_cos)), "map_coss_min": float(np.min(map_cos)),
        "score_p99_abs": float(np.percentile(np.abs(ref_scores - q_scores), 99)),
        "score_max_abs": float(np.max(np.abs(ref_scores - q_scores))), "score_mean_abs": float(np.mean(np.abs(ref_scores - q_scores))),
        "label_flips": flips, "label_flip_rate": flips / len(items),
    }
    failures = []
    for key, label, bound in (("pixel_auc", "pixel AUC", bounds.pixel_auc_drop), ("coss", "COSS", bounds.coss_drop),
                              ("detection_auc", "detection AUC", bounds.detection_auc_drop)):
        if math.isnan(ref[key]):
            continue  # the set cannot measure it (no manipulated pixels, or one class only)
        drop = ref[key] - got[key]
        if not drop <= bound:  # NaN in the int8 run fails too
            failures.append(f"{label} drops by {drop:.4f} ({ref[key]:.4f} → {got[key]:.4f}) > {bound:g}")
    if not agreement["map_mean_abs"] <= bounds.map_mean_abs:
        failures.append(f"maps differ by {agreement['map_mean_abs']:.4f} on average > {bounds.map_mean_abs:g}")
    if not agreement["score_p99_abs"] <= bounds.score_p99_abs:
        failures.append(f"99 % of scores differ by up to {agreement['score_p99_abs']:.4f} > {bounds.score_p99_abs:g}")
    return GateReport(description, len(items), sum(it.gt is not None for it in items), ref, got, agreement, bounds,
                      threshold, failures)
