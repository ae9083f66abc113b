"""Measurements of upsampling texture, used by the synthesis tests to check that the generator's fakes carry it."""

from __future__ import annotations

import numpy as np


def period2_statistic(image: np.ndarray) -> float:
    """How much an image's second-derivative statistics depend on pixel parity (Gallagher 2005).

    ``image`` is (H, W) or (H, W, C) (channels are averaged). Along rows and along columns it
    compares, between even and odd pixels, the correlation of neighbouring second differences and
    their variance, each normalized by the overall variance, and returns the largest gap. A camera
    photo gives about 0; ×2 upsampling of any family (nearest, bilinear, bicubic, transposed
    convolution, unpooling) gives 0.1 or more.
    """
    gray = np.asarray(image, np.float64)
    if gray.ndim == 3:
        gray = gray.mean(axis=2)
    stats = []
    for y in (gray, gray.T):
        d = y[:, 2:] - 2 * y[:, 1:-1] + y[:, :-2]
        v = float((d * d).mean())
        if v == 0.0:
            continue
        even_pairs = (d[:, 0:-1:2] * d[:, 1::2]).mean()
        odd_pairs = (d[:, 1:-1:2] * d[:, 2::2]).mean()
        stats += [abs(even_pairs - odd_pairs) / v, abs((d[:, 0::2] ** 2).mean() - (d[:, 1::2] ** 2).mean()) / v]
    return float(max(stats, default=0.0))
