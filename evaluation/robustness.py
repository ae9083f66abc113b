"""Robustness sweeps (paper Sec. V-B8, Figs. 13–15): degraded inputs, their ground truth, and γ.

A *variant* is what the model sees instead of the clean image: one of the real-world degradations of
``fakelocator.degradations`` (``jpeg``, ``blur``, ``noise``, ``lowres``) at one level, or the
*disorganization test* (``disorganize``): the image cut into ``g × g`` equal tiles (``g = 2``, four
pieces, in the paper) put back in a shuffled order.

Ground truth follows the paper: for a partial manipulation it is Eq. 7 of the **clean real image and
the degraded fake** ("the gray-scale fakeness ground truth map is processed by the real image and the
degraded fake image"); an entire synthesis stays all ones and a real image all zeros. The
disorganization shuffles the image and its ground truth with the same permutation.

For each level, γ = metric(degraded) / metric(clean), per metric (Fig. 15 plots ACC, COSS, PSNR, SSIM).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fakelocator.degradations import DEGRADATIONS, degrade
from fakelocator.errors import FakeLocatorError

DISORGANIZE = "disorganize"
#: Every robustness test, in the order reports list them.
TESTS = (*DEGRADATIONS, DISORGANIZE)

#: Default levels, weakest first, spanning the ranges of the paper's Fig. 15 axes (the paper does not
#: list its tick values in the text). JPEG includes 75, the model card's bar.
DEFAULT_LEVELS: dict[str, tuple] = {
    "jpeg": (100, 90, 80, 75, 70, 60, 50, 40, 30, 20, 10),
    "blur": (1, 3, 5, 7, 9, 11),
    "noise": (0.0, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05),
    "lowres": (1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    DISORGANIZE: (2,),
}
#: What a level means, per test.
PARAMETERS = {**{name: d.parameter for name, d in DEGRADATIONS.items()}, DISORGANIZE: "tiles per side (2 = four pieces)"}
_INTEGER_LEVELS = ("jpeg", "blur", DISORGANIZE)
#: The metrics Fig. 13 and Fig. 15 plot.
PLOTTED = ("acc", "coss", "psnr", "ssim")


@dataclass(frozen=True)
class Variant:
    """What the model sees: ``clean``, or a robustness test at one level."""

    name: str
    level: float | int | None = None

    @property
    def key(self) -> str:
        return "clean" if self.name == "clean" else f"{self.name}:{format_level(self.level)}"


CLEAN = Variant("clean")


def format_level(level) -> str:
    return f"{level:g}" if isinstance(level, float) else str(level)


def parse_tests(text: str) -> tuple[str, ...]:
    """``"jpeg,blur"`` or ``"all"`` → test names, validated."""
    names = list(TESTS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in TESTS]
    if unknown or not names:
        raise FakeLocatorError(f"unknown robustness test(s) {', '.join(unknown) or '(none)'}; choose from all, {', '.join(TESTS)}")
    return tuple(dict.fromkeys(names))


def parse_levels(spec: str) -> tuple[str, tuple]:
    """``"jpeg=90,75,50"`` → ("jpeg", (90, 75, 50)), each level checked by its test."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or name not in TESTS:
        raise FakeLocatorError(f"levels must be given as TEST=L1,L2,... with TEST one of {', '.join(TESTS)}; got {spec!r}")
    try:
        cast = int if name in _INTEGER_LEVELS else float
        levels = tuple(cast(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise FakeLocatorError(f"{name} levels must be {'integers' if cast is int else 'numbers'}: {values!r}") from None
    if not levels:
        raise FakeLocatorError(f"no levels given for {name}")
    for level in levels:
        check_level(name, level)
    return name, levels


def check_level(name: str, level) -> None:
    """Raise a FakeLocatorError naming the test when ``level`` is not valid for it."""
    if name == DISORGANIZE:
        if not (isinstance(level, (int, np.integer)) and level >= 1):
            raise FakeLocatorError(f"disorganize level must be an integer >= 1 (tiles per side), got {level!r}")
        return
    probe = np.zeros((4, 4, 3), np.uint8)
    degrade(probe, name, level, rng=0)  # the degradation's own validation and message


# ------------------------------------------------------------------------------------ disorganization


def disorganize_permutation(grid: int, rng: np.random.Generator) -> np.ndarray:
    """A random order of the ``grid²`` tiles that is not the identity (when ``grid >= 2``)."""
    n = grid * grid
    if n == 1:
        return np.zeros(1, np.intp)
    while True:
        order = rng.permutation(n)
        if (order != np.arange(n)).any():
            return order


def disorganize(array: np.ndarray, grid: int, order: np.ndarray) -> np.ndarray:
    """Cut ``array`` ((H, W) or (H, W, C)) into ``grid × grid`` equal tiles and reassemble them so that
    position ``j`` (row-major) holds tile ``order[j]``.

    H and W are first cropped down to multiples of ``grid`` (at most ``grid − 1`` rows and columns at
    the bottom and right), so that every tile fits every position.
    """
    h, w = array.shape[0] // grid * grid, array.shape[1] // grid * grid
    if h == 0 or w == 0:
        raise FakeLocatorError(f"an image of {array.shape[1]}x{array.shape[0]} cannot be cut into {grid}x{grid} tiles")
    th, tw = h // grid, w // grid
    tiles = [array[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(grid) for c in range(grid)]
    rows = [np.concatenate([tiles[order[r * grid + c]] for c in range(grid)], axis=1) for r in range(grid)]
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


# ------------------------------------------------------------------------------------------ variants


def apply_variant(
    variant: Variant,
    image: np.ndarray,
    ground_truth_of: Callable[[np.ndarray], np.ndarray | None],
    rng: np.random.Generator,
    *,
    degrade_image: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The image the model sees under ``variant`` and its ground truth.

    Args:
        image: the clean uint8 (H, W, 3) RGB image.
        ground_truth_of: maps an image of this sample to its ground truth (Eq. 7 against the clean
            real image for a partial manipulation; ones or zeros otherwise; None when not needed).
        rng: draws the noise and the tile order.
        degrade_image: False leaves the image as it is (e.g. real images when only fakes are degraded).
    """
    if variant.name == "clean" or not degrade_image:
        return image, ground_truth_of(image)
    if variant.name == DISORGANIZE:
        order = disorganize_permutation(int(variant.level), rng)
        gt = ground_truth_of(image)
        shuffled = disorganize(image, int(variant.level), order)
        return shuffled, None if gt is None else disorganize(gt, int(variant.level), order)
    degraded = degrade(image, variant.name, variant.level, rng=rng)
    return degraded, ground_truth_of(degraded)


def variants_for(tests: dict[str, tuple]) -> list[Variant]:
    """``{test: levels}`` → the clean reference followed by every (test, level)."""
    return [CLEAN] + [Variant(name, level) for name, levels in tests.items() for level in levels]


# -------------------------------------------------------------------------------------------- ratios


def gamma(clean: dict[str, float], degraded: dict[str, float], keys=None) -> dict[str, float]:
    """γ = degraded / clean per metric (``keys``, default all of ``clean``'s); NaN where the clean
    value is 0 or undefined."""
    out = {}
    for key in clean if keys is None else keys:
        c = clean.get(key, math.nan)
        d = degraded.get(key, math.nan)
        ok = c is not None and d is not None and math.isfinite(c) and math.isfinite(d) and c != 0
        out[key] = d / c if ok else math.nan
    return out


def sweep_summary(clean: dict[str, float], by_variant: dict[Variant, dict[str, float]], keys=None) -> dict[str, dict]:
    """``{test: {parameter, levels, metrics: [per level], gamma: [per level]}}`` from per-variant
    metrics; γ for ``keys`` (default every key)."""
    out: dict[str, dict] = {}
    for variant, metrics in by_variant.items():
        if variant.name == "clean":
            continue
        entry = out.setdefault(variant.name, {"parameter": PARAMETERS[variant.name], "levels": [], "metrics": [], "gamma": []})
        entry["levels"].append(variant.level)
        entry["metrics"].append(metrics)
        entry["gamma"].append(gamma(clean, metrics, keys))
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    """Long format: one row per model, dataset, test, level and metric, with the clean value and γ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "dataset", "test", "level", "metric", "value", "clean", "gamma"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})


def csv_rows(model: str, dataset: str, clean: dict[str, float], sweeps: dict[str, dict]) -> list[dict]:
    rows = []
    for test, entry in sweeps.items():
        for level, metrics, ratios in zip(entry["levels"], entry["metrics"], entry["gamma"]):
            for metric, ratio in ratios.items():
                rows.append({"model": model, "dataset": dataset, "test": test, "level": format_level(level),
                             "metric": metric, "value": metrics.get(metric, math.nan),
                             "clean": clean.get(metric, math.nan), "gamma": ratio})
    return rows


def plot(sweeps: dict[str, dict], path: Path, title: str = "", metrics: tuple[str, ...] = PLOTTED) -> Path:
    """Fig. 15-style PNG: one subplot per test, γ of each metric against the level (levels at even
    spacing, in the order given); the disorganization test, which has one level, as bars (Fig. 13)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state; PNG through Agg

    names = [n for n in TESTS if n in sweeps]
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4.4 * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(names):]:
        ax.set_visible(False)
    labels = {"acc": "ACC", "coss": "COSS", "psnr": "PSNR", "ssim": "SSIM"}
    for ax, name in zip(axes, names):
        entry = sweeps[name]
        levels = [format_level(v) for v in entry["levels"]]
        if name == DISORGANIZE and len(levels) == 1:
            values = [entry["gamma"][0].get(m, math.nan) for m in metrics]
            ax.bar([labels.get(m, m) for m in metrics], values, color="tab:blue")
            ax.set_xlabel(f"{name} ({levels[0]}x{levels[0]} tiles)")
        else:
            x = np.arange(len(levels))
            for m in metrics:
                ax.plot(x, [g.get(m, math.nan) for g in entry["gamma"]], marker="o", label=labels.get(m, m))
            ax.set_xticks(x, levels, rotation=45 if len(levels) > 8 else 0)
            ax.set_xlabel(f"{name}: {entry['parameter']}")
            ax.legend(fontsize=8)
        ax.set_ylabel("γ (degraded / clean)")
        ax.axhline(1.0, color="gray", linewidth=0.8, linestyle=":")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
