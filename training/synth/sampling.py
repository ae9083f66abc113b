"""The two ways the recipe draws a value, shared by every module (one draw from ``rng`` each)."""

from __future__ import annotations

import math

import numpy as np


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform in [lo, hi] when lo > 0 (scales, strengths, sizes), else uniform."""
    if lo > 0:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def choice(rng: np.random.Generator, table: dict[str, float]) -> str:
    """A key of ``table`` drawn with probability proportional to its weight."""
    keys = list(table)
    p = np.asarray([table[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]
