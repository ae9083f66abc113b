"""Run one loaded model over one dataset: every metric, every robustness variant, features for clustering.

``evaluate(locator, samples, settings)`` streams the dataset through the runtime's ``Locator`` (so
it measures exactly what users run: any backend, batched, the preprocessing contract, maps upsampled
to full resolution) and scores every image against its ground truth (Eq. 7, ``training.samples``).

The pipeline, all stages overlapping:

1. **prepare** (``workers`` threads): read the sample's image and, for a partial manipulation, its
   real image (each file is decoded once, however many samples and variants use it:
   ``SharedImages``), apply the variant (clean or a robustness degradation, ``robustness.py``) and
   compute its ground truth; with ``at_model_resolution`` the ground truth is resized to the
   network's input size right there. Real images need no ground truth (localization is measured on
   manipulated images only).
2. **infer**: the prepared images go to ``Locator.locate_iter`` (decoding threads, batching,
   inference, upsampling in threads).
3. **score** (``workers`` threads): localization metrics per manipulated image.

Samples are visited grouped by their real image (a real image, then the fakes made from it), so a
decoded real image lives only while its group is in flight.

Metrics are computed with BLAS limited to one thread: on a busy 2-core machine OpenBLAS's own
threads made ``np.dot`` on a 224² map 300× slower (33 ms instead of 0.1 ms, measured).
"""

from __future__ import annotations

import math
import os
import threading
import time
import zlib
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from fakelocator.contract import resize_bilinear
from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.evaluation import baselines, clustering, groups
from fakelocator.evaluation.metrics import (
    DEFAULT_BINARIZE_THRESHOLD,
    binarize,
    classification_metrics,
    coss,
    dice,
    iinc,
    iou,
    localization_metrics,
    mean_metrics,
    pbca,
    pixel_metrics,
    psnr,
)
from fakelocator.evaluation.robustness import CLEAN, DEFAULT_LEVELS, Variant, apply_variant, check_level, sweep_summary, variants_for
from fakelocator.training.groundtruth import entire_synthesis_map, partial_manipulation_map
from fakelocator.runtime.decode import decode_image, read_file
from fakelocator.training.samples import Sample

#: The columns of the paper's Tables IV and V, in their order.
TABLE_KEYS = ("acc", "real_acc", "fake_acc", "auc", "eer", "coss", "psnr", "ssim", "dice", "iou", "pbca", "iinc")
SSIM_MIN_SIDE = 11


@dataclass(frozen=True)
class EvalSettings:
    """How a model is scored (everything that changes the numbers is here and in the report).

    Args:
        threshold: a score ≥ threshold is "fake" (ACC, real ACC, fake ACC); None: the locator's,
            i.e. the model's calibrated threshold (its metadata) unless the locator was given one.
        binarize_threshold: maps are binarized at this level for IoU, Dice, PBCA and IINC (0.1 in
            the paper).
        at_model_resolution: compare the network's own map with the ground truth resized to the
            network's input size (contract bilinear rule), instead of both at full resolution.
        robustness: ``{test: levels}`` (``robustness.TESTS``); empty for none.
        degrade_reals: apply the robustness variants to real images too (default), so that ACC under
            degradation counts false alarms; the paper degrades the fakes only (False).
        cluster: run single-sample clustering on the clean features.
        cluster_picks: labelled samples tried (10 in the paper).
        seed: fixes the noise, the disorganization orders and the clustering.
        save_maps: how many example figures (real | fake | GT | prediction | overlay) to write.
        workers: threads for reading/degrading and for metrics (default: the locator's workers).
        held_out_families: manipulation families never seen in training (``groups.family_of``):
            reported in their own leave-families-out table.
    """

    threshold: float | None = None
    binarize_threshold: float = DEFAULT_BINARIZE_THRESHOLD
    at_model_resolution: bool = False
    robustness: dict[str, tuple] = field(default_factory=dict)
    degrade_reals: bool = True
    cluster: bool = False
    cluster_picks: int = clustering.DEFAULT_PICKS
    seed: int = 0
    save_maps: int = 0
    workers: int | None = None
    held_out_families: tuple[str, ...] = ()

    def __post_init__(self):
        problems = []
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            problems.append(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 < self.binarize_threshold <= 1.0:
            problems.append(f"binarize threshold must be in (0, 1], got {self.binarize_threshold}")
        if self.cluster_picks < 1:
            problems.append(f"cluster picks must be >= 1, got {self.cluster_picks}")
        if self.save_maps < 0:
            problems.append(f"save_maps must be >= 0, got {self.save_maps}")
        if isinstance(self.held_out_families, str):
            problems.append(f"held_out_families must be a sequence of names, got the string {self.held_out_families!r} "
                            "(groups.parse_families splits 'a,b')")
        if problems:
            raise FakeLocatorError("; ".join(problems))
        for name, levels in self.robustness.items():
            for level in levels:
                check_level(name, level)

    @classmethod
    def with_default_levels(cls, tests, **kwargs) -> "EvalSettings":
        """Settings whose robustness sweep runs ``tests`` at their ``DEFAULT_LEVELS``."""
        return cls(robustness={t: DEFAULT_LEVELS[t] for t in tests}, **kwargs)

    def variants(self) -> list[Variant]:
        return variants_for(self.robustness)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["robustness"] = {k: list(v) for k, v in self.robustness.items()}
        return d


@dataclass
class Evaluation:
    """One model on one dataset. Metric dicts use the keys of ``TABLE_KEYS`` (NaN where undefined).

    Attributes:
        metrics: the clean evaluation: classification over every image, localization averaged over
            manipulated images (plus ``n_real``, ``n_fake``, ``n_localized``).
        breakdown: rows per kind (real, partial, entire) and per manipulated property.
        baselines: the constant and centred-prior maps on the same images (``baselines``): the
            chosen ``value`` and ``scale``, and per subset (``manipulated``, ``partial``,
            ``entire``) their mean metrics beside the model's.
        groups: rows per manipulation family, per image-size bucket and, with held-out families,
            the leave-families-out rows (``groups``).
        robustness: ``{test: {parameter, levels, metrics, gamma}}`` (``robustness.sweep_summary``).
        clustering: single-sample clustering (``ClusteringResult.to_dict()``), or ``{"skipped": why}``.
        errors: ``{image, variant, reason}`` for every image that could not be evaluated.
        records: per-image clean results (path, kind, property, score, localization metrics).
        timings: wall time, throughput and mean per-image stage times (ms).
    """

    model: str
    dataset: str
    counts: dict[str, int]
    metrics: dict[str, float]
    breakdown: list[dict]
    robustness: dict[str, dict]
    clustering: dict | None
    errors: list[dict]
    records: list[dict]
    timings: dict[str, float]
    examples: list[str] = field(default_factory=list)
    baselines: dict = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)
    clustering_result: clustering.ClusteringResult | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("model", "dataset", "counts", "metrics", "breakdown", "baselines", "groups",
                                           "robustness", "clustering", "errors", "timings", "examples")}
        return d


# ------------------------------------------------------------------------------------ shared images


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB, decoded as ``trt-locate`` decodes it (``runtime/decode.py``: EXIF
    orientation applied, the same refusals), so the evaluation measures what users run."""
    return np.ascontiguousarray(decode_image(read_file(path), str(path))[:, :, ::-1])  # BGR -> RGB


class SharedImages:
    """Decoded images shared by the tasks that need them: each file is read once, by the first task
    that asks, and dropped after its last announced use. Thread-safe."""

    def __init__(self, uses: Counter, reader: Callable[[Path], np.ndarray] = read_image):
        self._uses = dict(uses)
        self._entries: dict[Path, Future] = {}
        self._lock = threading.Lock()
        self._read = reader
        self.reads = 0

    def get(self, path: Path) -> np.ndarray:
        with self._lock:
            entry = self._entries.get(path)
            owner = entry is None
            if owner:
                entry = self._entries[path] = Future()
                self.reads += 1
        if owner:
            try:
                entry.set_result(self._read(path))
            except InputError as e:
                entry.set_exception(e)
            except Exception as e:  # noqa: BLE001 - one unreadable file fails its samples only
                entry.set_exception(InputError(str(path), f"cannot be read ({type(e).__name__}: {e})"))
        return entry.result()

    def release(self, path: Path) -> None:
        with self._lock:
            self._uses[path] -= 1
            if self._uses[path] <= 0:
                self._entries.pop(path, None)

    def __len__(self) -> int:
        return len(self._entries)


# ------------------------------------------------------------------------------------------- helpers


def _group_order(samples: list[Sample]) -> list[int]:
    """Indices of ``samples`` with every real image next to the fakes made from it (stable)."""
    def key(i: int) -> str:
        s = samples[i]
        return str(s.real if s.kind == "partial" else s.image)

    first_seen: dict[str, int] = {}
    for i in range(len(samples)):
        first_seen.setdefault(key(i), i)
    return sorted(range(len(samples)), key=lambda i: (first_seen[key(i)], samples[i].kind != "real", i))


def _task_rng(seed: int, sample_index: int, variant: Variant) -> np.random.Generator:
    """A generator fixed by (seed, sample, variant), independent of threading and of visiting order."""
    return np.random.default_rng([seed, sample_index, zlib.crc32(variant.key.encode())])


def localization(pred: np.ndarray, gt: np.ndarray, binarize_threshold: float) -> dict[str, float]:
    """``metrics.localization_metrics`` and ``metrics.pixel_metrics``; maps under 11 pixels on a side
    get SSIM NaN instead of an error."""
    if min(pred.shape) >= SSIM_MIN_SIDE:
        return {**localization_metrics(pred, gt, binarize_threshold), **pixel_metrics(pred, gt, binarize_threshold)}
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    pb, gb = binarize(p, binarize_threshold), binarize(g, binarize_threshold)
    return {"coss": coss(p, g), "psnr": psnr(p, g), "ssim": math.nan, "iou": iou(pb, gb),
            "dice": dice(pb, gb), "pbca": pbca(pb, gb), "iinc": iinc(pb, gb), **pixel_metrics(p, g, binarize_threshold)}


def summarize(scores: np.ndarray, labels: np.ndarray, loc_rows: list[dict], threshold: float) -> dict[str, float]:
    """Classification over the images with a score, localization averaged over ``loc_rows``."""
    ok = np.isfinite(scores)
    c = classification_metrics(scores[ok], labels[ok], threshold)
    out = {"acc": c.acc, "real_acc": c.real_acc, "fake_acc": c.fake_acc, "auc": c.auc, "eer": c.eer}
    out.update(mean_metrics(loc_rows))
    out.update(n_real=c.n_real, n_fake=c.n_fake, n_localized=len(loc_rows))
    return out


def breakdown(samples: list[Sample], scores: np.ndarray, loc: list[dict | None], threshold: float) -> list[dict]:
    """Rows per kind and per manipulated property (a property holding exactly one kind's images, like
    ``entire``, is not repeated).

    A fake group's ``acc`` is its detection rate (fake ACC) and its ``auc`` separates it from all
    real images of the dataset; the real row's ``acc`` is real ACC. Localization is averaged over
    the group's images.
    """
    labels = np.array([s.label for s in samples])
    ok = np.isfinite(scores)
    real = ok & (labels == 0)
    groups: list[tuple[str, str, np.ndarray]] = []
    for kind in ("real", "partial", "entire"):
        sel = np.array([s.kind == kind for s in samples]) & ok
        if sel.any():
            groups.append(("kind", kind, sel))
    properties = sorted({s.property for s in samples if s.label == 1 and s.property})
    for prop in properties:
        sel = np.array([s.label == 1 and s.property == prop for s in samples]) & ok
        if sel.any() and not any((sel == other).all() for _, _, other in groups):  # e.g. "entire" = kind entire
            groups.append(("property", prop, sel))
    rows = []
    for group, name, sel in groups:
        fake = labels[sel][0] == 1
        pred_fake = scores[sel] >= threshold
        row = {"group": group, "name": name, "n": int(sel.sum()), "mean_score": float(scores[sel].mean()),
               "acc": float(np.mean(pred_fake if fake else ~pred_fake)), "auc": math.nan}
        if fake and real.any():
            both = sel | real
            row["auc"] = classification_metrics(scores[both], labels[both], threshold).auc
        idx = np.flatnonzero(sel)
        row.update(mean_metrics([loc[i] for i in idx if loc[i] is not None]))
        rows.append(row)
    return rows


@dataclass
class _Prepared:
    order: int  # position in the visiting order
    variant: int  # index into the variant list
    image: np.ndarray | None = None  # (H, W, 3) uint8 RGB: what the model sees
    gt: np.ndarray | None = None  # (H, W) or, at model resolution, (h, w) float32; None for real images
    error: str | None = None
    ms: float = 0.0
    example: dict | None = None  # full-resolution arrays for an example figure


# ------------------------------------------------------------------------------------------ evaluate


def evaluate(
    locator,
    samples: list[Sample],
    settings: EvalSettings = EvalSettings(),
    *,
    model_name: str = "model",
    dataset_name: str = "dataset",
    examples_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Evaluate ``locator`` (a ``fakelocator.runtime.Locator``) on ``samples``.

    Args:
        samples: from ``training.samples.load_samples`` / ``collect_samples``.
        settings: thresholds, resolution, robustness variants, clustering, examples.
        examples_dir: where ``settings.save_maps`` example figures go (required when it is > 0).
        progress: called with the number of (image, variant) evaluations just finished.
    """
    from threadpoolctl import threadpool_limits

    if not samples:
        raise FakeLocatorError(f"dataset {dataset_name}: no samples to evaluate")
    if settings.save_maps and examples_dir is None:
        raise FakeLocatorError("save_maps needs an examples directory")
    if settings.threshold is None:  # the run's (RunSpec.threshold): the model's unless overridden
        settings = replace(settings, threshold=locator.threshold)
    variants = settings.variants()
    order = _group_order(samples)
    n, nv = len(samples), len(variants)
    tasks = [(pos, vi) for pos in range(n) for vi in _variant_indices(samples[order[pos]], nv, settings)]
    labels = np.array([s.label for s in samples], np.int64)
    workers = settings.workers or getattr(locator, "workers", None) or max(2, min(8, os.cpu_count() or 2))
    net_size = locator.contract.size
    contract = getattr(locator, "contract", locator.info.preprocessing)  # the analysis the locator runs
    if settings.at_model_resolution and contract.native:
        raise FakeLocatorError("model-resolution maps exist in fit analysis only (native analysis has one map per "
                               "tile); evaluate native at full resolution, or pass --analysis fit")
    keep_outputs = settings.at_model_resolution or settings.cluster
    if keep_outputs and getattr(locator, "regions", None) is not None:
        raise FakeLocatorError("model-resolution maps and clustering need whole-image inference; "
                               "this locator has a region provider")
    examples = set(_example_indices(samples, settings.save_maps))

    uses: Counter = Counter()
    for pos, _ in tasks:
        s = samples[order[pos]]
        uses[s.image] += 1
        if s.kind == "partial":
            uses[s.real] += 1
    images = SharedImages(uses)

    def prepare(task: tuple[int, int]) -> _Prepared:
        pos, vi = task
        index = order[pos]
        s, variant = samples[index], variants[vi]
        prep = _Prepared(pos, vi)
        t0 = time.perf_counter()
        needed = [s.image] + ([s.real] if s.kind == "partial" else [])
        try:
            image = images.get(s.image)
            real = images.get(s.real) if s.kind == "partial" else None
            prep.image, prep.gt = apply_variant(
                variant, image, _ground_truth_of(s, real), _task_rng(settings.seed, index, variant),
                degrade_image=settings.degrade_reals or s.label == 1,
            )
            if variant is CLEAN and index in examples:
                prep.example = {"image": prep.image, "real": real, "gt": prep.gt}
            if settings.at_model_resolution and prep.gt is not None:
                prep.gt = np.clip(resize_bilinear(prep.gt, *net_size), 0.0, 1.0)  # (h, w)
        except InputError as e:
            prep.error = str(e)
        except FakeLocatorError as e:
            prep.error = f"{s.image}: {e}"
        except Exception as e:  # noqa: BLE001 - one image that breaks a degradation must not end the run
            prep.error = f"{s.image}: {variant.key} failed ({type(e).__name__}: {e})"
        finally:
            for path in needed:
                images.release(path)
        prep.ms = (time.perf_counter() - t0) * 1000
        return prep

    scores = np.full((nv, n), np.nan)
    loc: list[list[dict | None]] = [[None] * n for _ in range(nv)]
    features: list[np.ndarray | None] = [None] * n
    priors: list[dict | None] = [None] * n  # baselines.prior_stats of each clean manipulated image
    sizes: list[tuple[int, int] | None] = [None] * n  # (height, width) of each image
    errors: list[dict] = []
    stage = Counter()
    example_paths: list[str] = []
    fed: deque[_Prepared] = deque()

    def fail(prep: _Prepared, reason: str) -> None:
        errors.append({"image": str(samples[order[prep.order]].image), "variant": variants[prep.variant].key, "reason": reason})
        if progress:
            progress(1)

    def feed() -> Iterator[np.ndarray]:
        from fakelocator.runtime.pipeline import prefetch

        for prep in prefetch(prepare, tasks, workers=workers, depth=2 * workers + 2 * locator.batch_size):
            stage["prepare"] += prep.ms
            if prep.error is not None:
                fail(prep, prep.error)
                continue
            fed.append(prep)
            image, prep.image = prep.image, None
            yield image

    def score(prep: _Prepared, result) -> tuple[_Prepared, object, dict | None, float]:
        t0 = time.perf_counter()
        row = None
        if prep.gt is not None:
            pred = np.clip(result.outputs["map"], 0.0, 1.0) if settings.at_model_resolution else result.map
            row = localization(pred, prep.gt, settings.binarize_threshold)
            if prep.variant == 0:  # what the baseline maps need, on the clean images
                priors[order[prep.order]] = baselines.prior_stats(prep.gt, settings.binarize_threshold)
        return prep, result, row, (time.perf_counter() - t0) * 1000

    def collect(future: Future) -> None:
        prep, result, row, ms = future.result()
        index = order[prep.order]
        scores[prep.variant, index] = result.score
        loc[prep.variant][index] = row
        if prep.variant == 0:
            sizes[index] = (result.height, result.width) if result.height else result.map.shape[:2]
        stage["metrics"] += ms
        for k, v in result.timings.items():
            stage[k] += v
        if prep.variant == 0 and result.outputs is not None and "features" in result.outputs:
            features[index] = result.outputs["features"]
        if prep.example is not None:
            from fakelocator.evaluation.examples import write_example

            s = samples[index]
            name = f"{len(example_paths):03d}_{s.kind}_{Path(s.image).stem}.png"
            example_paths.append(str(write_example(
                examples_dir / name, s, prep.example["image"], prep.example["real"], prep.example["gt"], result.map,
                score=result.score, threshold=settings.threshold,
            )))
        if progress:
            progress(1)

    t_start = time.perf_counter()
    pending: deque[Future] = deque()
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers, thread_name_prefix="fakelocator-eval") as pool:
        results = locator.locate_iter(feed(), color_order="RGB", on_error="record", keep_outputs=keep_outputs)
        try:
            for result in results:
                prep = fed.popleft()
                if result.error is not None:
                    fail(prep, result.error)
                    continue
                pending.append(pool.submit(score, prep, result))
                while pending and (pending[0].done() or len(pending) > 2 * workers):
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        finally:
            results.close()
    wall = time.perf_counter() - t_start

    done = int(np.isfinite(scores).sum())
    if not settings.degrade_reals:  # real images were shown clean only: their score is the clean one
        real = labels == 0
        scores[1:, real] = scores[0, real]
    by_variant = {}
    for vi, variant in enumerate(variants):
        by_variant[variant] = summarize(scores[vi], labels, [r for r in loc[vi] if r is not None], settings.threshold)
    clean = by_variant[CLEAN]

    cluster_dict, cluster_result = None, None
    if settings.cluster:
        cluster_dict, cluster_result, cluster_labels = _cluster(features, labels, settings)
    else:
        cluster_labels = None

    records = []
    for i, s in enumerate(samples):
        rec = {"image": _relative(s), "kind": s.kind, "property": s.property, "label": int(s.label),
               "score": float(scores[0, i]) if np.isfinite(scores[0, i]) else None}
        rec.update(loc[0][i] or {})
        h, w = sizes[i] or (None, None)
        rec.update(family=groups.family_of(s), height=h, width=w, size_bucket=groups.size_bucket(h, w), prior=priors[i])
        records.append(rec)
    baseline_summary, group_rows = _baselines_and_groups(records, settings)

    timings = {"wall_s": wall, "evaluations": done, "per_second": done / wall if wall > 0 else math.nan,
               "images_read": images.reads}
    timings.update({f"{k}_ms": v / max(1, done) for k, v in stage.items()})
    return Evaluation(
        model=model_name,
        dataset=dataset_name,
        counts=dict(Counter(s.kind for s in samples)),
        metrics=clean,
        breakdown=breakdown(samples, scores[0], loc[0], settings.threshold),
        baselines=baseline_summary,
        groups=group_rows,
        robustness=sweep_summary(clean, by_variant, TABLE_KEYS) if settings.robustness else {},
        clustering=cluster_dict,
        errors=errors,
        records=records,
        timings=timings,
        examples=example_paths,
        clustering_result=cluster_result,
        labels=cluster_labels,
    )


BASELINE_SUBSETS = ("manipulated", "partial", "entire")


def _baselines_and_groups(records: list[dict], settings: EvalSettings) -> tuple[dict, list[dict]]:
    """The baseline maps' choices and means per subset of the manipulated images, beside the
    model's own means on the same images; and the family, size and held-out rows."""
    localized = [r for r in records if r["prior"] is not None]
    choice = baselines.choose([r["prior"] for r in localized], [r["kind"] for r in localized])
    summary = {"value": choice["value"], "scale": choice["scale"], "area": choice["area"], "subsets": {}}
    for subset in BASELINE_SUBSETS:
        members = [r for r in localized if subset == "manipulated" or r["kind"] == subset]
        if not members:
            continue
        entry = baselines.means([r["prior"] for r in members], choice)
        entry["model"] = {k: groups.nanmean(r.get(k, math.nan) for r in members) for k in baselines.BASELINE_KEYS}
        entry["coss_ratio"] = baselines.ratio(entry["model"]["coss"], entry["constant"]["coss"])
        entry["coss_ratio_centred"] = baselines.ratio(entry["model"]["coss"], entry["centred"]["coss"])
        summary["subsets"][subset] = entry
    rows = groups.family_rows(records, choice, settings.threshold) + groups.size_rows(records, choice, settings.threshold)
    rows += groups.held_out_rows(records, tuple(settings.held_out_families), choice, settings.threshold)
    return summary, rows


def _variant_indices(sample: Sample, n_variants: int, settings: EvalSettings) -> range:
    """The variants a sample is shown in: all, or only the clean one for a real image that is not
    degraded (its result would be the clean one again)."""
    return range(1) if sample.label == 0 and not settings.degrade_reals else range(n_variants)


def evaluation_count(samples: list[Sample], settings: EvalSettings) -> int:
    """How many (image, variant) evaluations ``evaluate`` runs: the total its progress counts to."""
    nv = len(settings.variants())
    return sum(len(_variant_indices(s, nv, settings)) for s in samples)


def _ground_truth_of(sample: Sample, real: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray | None]:
    """Eq. 7 of the clean real image and whatever image this sample is shown as; ones for an entire
    synthesis; None for a real image (not localized)."""
    if sample.kind == "partial":
        def partial(image: np.ndarray) -> np.ndarray:
            if image.shape != real.shape:
                raise InputError(str(sample.image), f"size {image.shape[1]}x{image.shape[0]} differs from its real "
                                 f"image {sample.real} ({real.shape[1]}x{real.shape[0]})")
            return partial_manipulation_map(real, image)
        return partial
    if sample.kind == "entire":
        return lambda image: entire_synthesis_map(*image.shape[:2])
    return lambda image: None


def _example_indices(samples: list[Sample], count: int) -> list[int]:
    """``count`` samples spread evenly over the manipulated ones (real ones if there are none)."""
    if count <= 0:
        return []
    pool = [i for i, s in enumerate(samples) if s.label == 1] or list(range(len(samples)))
    if count >= len(pool):
        return pool
    return [pool[int(round(k * (len(pool) - 1) / max(1, count - 1)))] for k in range(count)]


def _cluster(features: list, labels: np.ndarray, settings: EvalSettings):
    have = [i for i, f in enumerate(features) if f is not None]
    if not have:
        return {"skipped": "the model returns no features output (export with features to cluster)"}, None, None
    x = np.stack([features[i] for i in have])
    y = labels[have]
    if len(set(y.tolist())) < 2:
        return {"skipped": "needs real and fake images"}, None, None
    try:
        result = clustering.single_sample_clustering(x, y, picks=settings.cluster_picks, seed=settings.seed)
    except FakeLocatorError as e:
        return {"skipped": str(e)}, None, None
    return result.to_dict(), result, y


def _relative(sample: Sample) -> str:
    if sample.root is not None:
        try:
            return Path(sample.image).relative_to(sample.root).as_posix()
        except ValueError:
            pass
    return str(sample.image)
