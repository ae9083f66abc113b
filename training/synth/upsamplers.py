"""The ×2 upsampling families of Sec. III-B, as a GAN decoder uses them, with random "learned" kernels.

Each family leaves its own texture (Fig. 4):

- ``transposed_conv``: stride-2 transposed convolution (kernel 3 or 4). Its kernel starts from the
  one that would interpolate exactly and is perturbed; the four output phases then sum different
  taps with different gains, the checkerboard of Odena et al. — a period-2 component;
- ``nearest``: each latent pixel becomes a 2×2 block of equal values;
- ``bilinear``, ``bicubic``: interpolation, which makes the second derivative periodic
  (Gallagher 2005), detectable by a Laplacian;
- ``unpool``: each latent pixel goes to one position of its 2×2 block (the max-pool's argmax when
  the encoder max-pooled, else a fixed phase) and the other three are zero; usually followed by a
  perturbed 3×3 convolution, as decoders do, sometimes left as raw zero fill.

Tensors are (1, C, h, w) float32 on the CPU, values around [-1, 1] (a GAN's tanh range). Random
parameters come from a ``numpy.random.Generator`` so that results depend on the item's seed only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# 1-D kernels whose stride-2 transposed convolution interpolates exactly (before perturbation).
_TCONV_BASE = {4: np.array([0.25, 0.75, 0.75, 0.25]), 3: np.array([0.5, 1.0, 0.5])}


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def perturbed_kernel(base_1d: np.ndarray, channels: int, strength: float, rng: np.random.Generator,
                     gain: float, cross: float = 0.3) -> np.ndarray:
    """(C, C, k, k) kernel: ``base ⊗ base`` scaled to sum to ``gain`` on the diagonal, plus noise of
    relative size ``strength`` (``cross`` times that between channels).

    The noise has zero sum, so every output channel keeps exactly the DC gain ``gain`` — a flat
    image keeps its mean and colour — while the taps that feed different output phases no longer
    balance: that is the texture. (Renormalizing noisy taps instead could divide by a sum near 0.)
    """
    k = base_1d.size
    base = np.outer(base_1d, base_1d)
    base = base * (gain / base.sum())
    scale = strength * base.max()
    w = np.zeros((channels, channels, k, k))
    for o in range(channels):
        for i in range(channels):
            noise = rng.normal(size=(k, k))
            noise = (noise - noise.mean()) * scale
            w[o, i] = base + noise if o == i else cross * noise
    return w


def refine_kernel(channels: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """(C, 1, 3, 3) depthwise 3×3 kernels: identity plus zero-sum noise (a "learned" convolution)."""
    noise = rng.normal(size=(channels, 1, 3, 3))
    noise -= noise.mean(axis=(2, 3), keepdims=True)
    w = noise * strength
    w[:, 0, 1, 1] += 1.0
    return w


@dataclass
class Upsampler:
    """One ×2 upsampling layer with fixed (drawn) parameters, applied to as many tensors as needed."""

    family: str
    channels: int
    params: dict

    @property
    def name(self) -> str:
        if self.family == "transposed_conv":
            return f"transposed_conv{self.params['k']}"
        if self.family == "unpool":
            return "unpool_conv" if "conv" in self.params else "unpool_zero"
        if self.family in ("bilinear", "bicubic") and self.params.get("align_corners"):
            return f"{self.family}_ac"
        return self.family

    def __call__(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.family == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.family in ("bilinear", "bicubic"):
            return F.interpolate(x, size=(2 * h, 2 * w), mode=self.family, align_corners=self.params["align_corners"])
        if self.family == "transposed_conv":
            k = self.params["k"]
            return F.conv_transpose2d(x, self.params["weight"], stride=2, padding=1, output_padding=1 if k == 3 else 0)
        if self.family == "unpool":
            if indices is not None and self.params["use_indices"]:
                # max_unpool2d by hand: F.max_unpool2d's size check imports sympy (seconds)
                flat = x.new_zeros((*x.shape[:2], 4 * h * w))
                y = flat.scatter_(2, indices.flatten(2), x.flatten(2)).view(*x.shape[:2], 2 * h, 2 * w)
            else:
                dy, dx = self.params["phase"]
                y = x.new_zeros((*x.shape[:2], 2 * h, 2 * w))
                y[..., dy::2, dx::2] = x
            if "conv" in self.params:
                y = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), self.params["conv"])
            return y
        raise ValueError(f"unknown upsampling family {self.family!r}")


def make_upsampler(family: str, channels: int, strength: float, rng: np.random.Generator, *,
                   zero_fill_probability: float = 0.25) -> Upsampler:
    """Draw the parameters of one ``family`` layer for ``channels`` channels.

    ``strength`` is the relative perturbation of learned kernels (transposed convolution, the
    convolution after unpooling): the larger, the stronger the texture.
    """
    if family == "nearest":
        return Upsampler(family, channels, {})
    if family in ("bilinear", "bicubic"):
        return Upsampler(family, channels, {"align_corners": bool(rng.random() < 0.3)})
    if family == "transposed_conv":
        k = 4 if rng.random() < 0.5 else 3
        # conv_transpose2d weights are (C_in, C_out, k, k); the kernel is drawn (C_out, C_in, k, k)
        w = perturbed_kernel(_TCONV_BASE[k], channels, strength, rng, gain=4.0).transpose(1, 0, 2, 3)
        return Upsampler(family, channels, {"k": k, "weight": as_tensor(w)})
    if family == "unpool":
        params = {"use_indices": bool(rng.random() < 0.7), "phase": (int(rng.integers(2)), int(rng.integers(2)))}
        if rng.random() >= zero_fill_probability:
            params["conv"] = as_tensor(perturbed_kernel(_TCONV_BASE[3], channels, strength, rng, gain=4.0))
        return Upsampler(family, channels, params)
    raise ValueError(f"unknown upsampling family {family!r}")
