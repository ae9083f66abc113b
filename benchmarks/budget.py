"""Fit ``fakelocator bench`` to a time budget: measure the model's speed first, then size the work.

The full sweep (every batch size × input kind × analysis × backend, at least ``min_images`` images
each, plus the baseline and a 10,000-image memory run) suits a GPU; with a model that takes seconds
per 1080p image on a CPU it would take hours. So, as ``yolo benchmark`` keeps its default short, the
benchmark first times one warm image per input kind and analysis (``probe``), predicts what each
part of the plan costs (``predict``: images pushed through the pipeline × seconds per image, per
backend), and
lowers the counts, cheapest loss of information first, until the prediction fits (``fit``):

1. the memory run gets at most a quarter of the budget (skipped when that is under 50 images);
2. ``min_images`` → 0 (small batches then get ``iterations`` batches, no more);
3. ``iterations`` 20 → 10; then the largest batch sizes are dropped, one at a time, down to two;
4. ``iterations`` → 5, baseline images → 10, ``warmup`` → 1, ``iterations`` → 3, the baseline
   images → 3, the batch sizes down to the smallest;
5. then, when dropping a batch size freed more time than needed, ``iterations`` go back up (5, 10,
   as asked) as far as the budget allows.

Counts are never raised: what the user set explicitly is a maximum. The prediction counts the
measurements only (loading models, counting FLOPs, generating inputs and the probes come on top);
the baseline is predicted from the ``fit`` speed of the first backend. ``budget_s = 0`` keeps the
plan as configured (and still says its predicted duration).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator

MEMORY_SHARE = 0.25  # of the budget, at most, for the memory-growth run
MEMORY_MIN_IMAGES = 50  # under this a memory run says nothing about growth: skipped instead


@dataclass(frozen=True)
class Speeds:
    """Warm seconds per image, end to end, of one backend at the smallest batch size.

    ``per_input``: {(input kind, analysis): seconds}; ``baseline``: {input kind: seconds} of the
    ``fit`` analysis, which approximates the naive baseline (it resizes every image to the input).
    """

    per_input: dict[tuple[str, str], float]
    baseline: dict[str, float]

    def to_dict(self) -> dict:
        return {"seconds_per_image": {f"{k} {a}": s for (k, a), s in self.per_input.items()},
                "baseline_seconds_per_image": dict(self.baseline)}


def measurement_images(config, batch: int) -> int:
    """Images one measurement (one backend, batch size, input kind, analysis) pushes through.

    Per-stage timing: ``warmup + iterations`` batches; end to end (``end_to_end.py``): ``warmup``
    batches, ``iterations`` ``locate`` calls, then a stream of ``iterations`` batches.
    """
    iterations = config.iterations_for(batch)
    stages = (config.warmup + iterations) * batch if config.stages else 0
    return stages + (config.warmup + 2 * iterations) * batch


def predict(config, speeds: Speeds, analyses: tuple[str, ...], others: tuple[Speeds, ...] = ()) -> dict[str, float]:
    """Predicted seconds of each part of the plan: {"measurements", "baseline", "memory", "total"}.

    ``speeds``: the first variant's (it runs the memory run); ``others``: those of the other variants.
    """
    measurements = 0.0
    for variant in (speeds, *others):
        for batch in config.batches:
            for kind in config.inputs:
                for analysis in analyses:
                    measurements += measurement_images(config, batch) * variant.per_input[(kind, analysis)]
    baseline = 0.0
    if config.baseline and speeds.baseline:
        runs = 2 if config.device == "cpu" else 1  # the CPU baseline runs twice (baseline.py)
        per_run = config.baseline_images + max(config.warmup, 5)
        baseline = sum(runs * per_run * speeds.baseline[kind] for kind in config.inputs)
    memory = config.memory_run * speeds.per_input[(config.memory_input, analyses[-1])] if config.memory_run else 0.0
    return {"measurements": measurements, "baseline": baseline, "memory": memory,
            "total": measurements + baseline + memory}


def _cheaper(config, budget_s: float, memory_seconds_per_image: float) -> Iterator:
    """Successively cheaper plans, in the order of the module docstring."""
    if config.memory_run:
        fits = int(MEMORY_SHARE * budget_s / memory_seconds_per_image) if memory_seconds_per_image > 0 else config.memory_run
        memory = min(config.memory_run, fits)
        config = replace(config, memory_run=memory if memory >= MEMORY_MIN_IMAGES else 0)
        yield config
    if config.min_images:
        config = replace(config, min_images=0)
        yield config
    if config.iterations > 10:
        config = replace(config, iterations=10)
        yield config
    while len(config.batches) > 2:
        config = replace(config, batches=tuple(sorted(config.batches))[:-1])
        yield config
    for field, value in (("iterations", 5), ("baseline_images", 10), ("warmup", 1), ("iterations", 3), ("baseline_images", 3)):
        if getattr(config, field) > value:
            config = replace(config, **{field: value})
            yield config
    while len(config.batches) > 1:
        config = replace(config, batches=tuple(sorted(config.batches))[:-1])
        yield config


def fit(config, speeds: Speeds, analyses: tuple[str, ...], budget_s: float, others: tuple[Speeds, ...] = ()):
    """The first plan of ``_cheaper`` whose prediction fits ``budget_s`` (or the cheapest one), and its
    prediction. ``analyses`` are the resolved analyses of the sweep (the last one runs the memory run)."""
    memory_speed = speeds.per_input[(config.memory_input, analyses[-1])] if config.memory_run else 0.0
    best = config
    if predict(best, speeds, analyses, others)["total"] > budget_s:
        for best in _cheaper(config, budget_s, memory_speed):
            if predict(best, speeds, analyses, others)["total"] <= budget_s:
                break
        # Dropping a batch size can free more time than needed: give some back to the iterations
        # (more samples per percentile), never beyond what was asked.
        for value in (5, 10, config.iterations):
            candidate = replace(best, iterations=max(best.iterations, min(value, config.iterations)))
            if predict(candidate, speeds, analyses, others)["total"] <= budget_s:
                best = candidate
    return best, predict(best, speeds, analyses, others)


def probe(make_locator: Callable[[str | None], object], pools: dict, analyses: tuple[str | None, ...],
          baseline: bool, clock: Callable[[], float] = time.perf_counter, slow_s: float = 2.0) -> tuple[Speeds, tuple[str, ...]]:
    """Time one warm image per input kind and analysis (one untimed image first) through
    ``make_locator(analysis)``; the ``fit`` analysis too when the baseline will run. A first image
    that takes ``slow_s`` or more is its own estimate (warming up is then a small part of it), so
    that probing a slow backend on 1080p costs one image, not two.

    Returns the speeds and the resolved analysis names of ``analyses`` (None: the model's own).
    """
    per_input: dict[tuple[str, str], float] = {}
    resolved = []
    wanted = list(analyses) + (["fit"] if baseline and "fit" not in analyses else [])
    fit_speeds: dict[str, float] = {}
    for i, analysis in enumerate(wanted):
        locator = make_locator(analysis)  # shares the caller's backend: the caller closes it
        name = locator.contract.analysis
        for kind, pool in pools.items():
            start = clock()
            for r in locator.locate([pool.item(0)], on_error="record"):
                if r.error is not None:
                    raise RuntimeError(f"the benchmark input {r.source} failed: {r.error}")
            seconds = clock() - start
            if seconds < slow_s:
                start = clock()
                locator.locate([pool.item(1 % len(pool))], on_error="record")
                seconds = clock() - start
            if i < len(analyses):
                per_input[(kind, name)] = seconds
            if name == "fit":
                fit_speeds[kind] = seconds
        if i < len(analyses):
            resolved.append(name)
    return Speeds(per_input, fit_speeds if baseline else {}), tuple(resolved)


def describe(config, prediction: dict[str, float], budget_s: float) -> str:
    """One line: the plan and its predicted duration, said before the measurements start."""
    memory = f"a {config.memory_run}-image memory run" if config.memory_run else "no memory run"
    baseline = f"baseline {config.baseline_images} images per input" if config.baseline else "no baseline"
    line = (f"plan: batch sizes {','.join(map(str, sorted(config.batches)))}, inputs {','.join(config.inputs)}, "
            f"{config.iterations} iterations (at least {config.min_images} images), warm-up {config.warmup}, "
            f"{baseline}, {memory}; about {prediction['total'] / 60:.1f} min of measuring "
            f"(measurements {prediction['measurements']:.0f} s, baseline {prediction['baseline']:.0f} s, "
            f"memory {prediction['memory']:.0f} s)")
    if budget_s:
        line += f", budget {budget_s / 60:.1f} min"
        if prediction["total"] > budget_s:
            line += " (the smallest plan is over it: the model is slow here; pass fewer --inputs or a larger --budget-s)"
    return line
