"""A GAN-like encoder–decoder with random weights that re-renders an image (Sec. III-A, Fig. 3).

The encoder halves the image ``depth`` times; an attribute edit may change the lowest-resolution
image; the decoder doubles it back with upsampling layers, adding a fraction (``retention``) of each
level's detail through skip connections::

    X[0] = image,  X[l+1] = down(X[l])                         # encoder
    Y[depth] = lift(edit(X[depth]))
    Y[l] = post(up_l(Y[l+1] + N[l])) + a_l · (lift(X[l]) − up_l(lift(X[l+1])))   # decoder with skips
    output = project(Y[0])

``N[l]`` is a little content each level invents (Gaussian, mostly shared across channels, like
StyleGAN's noise inputs); it reaches the output only through the upsampling layers, so even a flat
region, which interpolation alone would leave flat, gets the family's texture. With a perfect
decoder (``a_l = 1``, no noise, no post-processing, no edit) the output is the input; every
difference from it is made by the upsampling layers or passes through them. Decoder kinds:

- ``single``: one family at every level, RGB in and out;
- ``stack``: a family drawn per level;
- ``conv_decoder``: a small random convolutional decoder on C lifted feature channels (an
  orthonormal 3→C lift), with perturbed multi-channel kernels and a LeakyReLU residual branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fakelocator.training.synth.sampling import choice, log_uniform
from fakelocator.training.synth.upsamplers import Upsampler, as_tensor, make_upsampler, perturbed_kernel, refine_kernel

CONV_DECODER_FAMILIES = ("transposed_conv", "nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class DecoderSpec:
    """Everything drawn about one re-synthesis, except the random kernels themselves."""

    depth: int  # number of ×2 levels
    encoder: str  # avgpool | maxpool | strided_conv | antialiased
    kind: str  # single | stack | conv_decoder
    families: tuple[str, ...]  # per level, coarsest first
    retention: tuple[float, ...]  # skip fraction a_l per level, coarsest first
    strength: float  # relative perturbation of learned kernels
    noise: float = 0.0  # std of the content each level invents before upsampling, in [0, 1] units


def _down(x: torch.Tensor, encoder: str, kernel: torch.Tensor | None):
    if encoder == "avgpool":
        return F.avg_pool2d(x, 2), None
    if encoder == "maxpool":
        return F.max_pool2d(x, 2, return_indices=True)
    if encoder == "antialiased":
        return F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False), None
    if encoder == "strided_conv":
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, stride=2, groups=x.shape[1]), None
    raise ValueError(f"unknown encoder {encoder!r}")


def run_decoder(image: np.ndarray, spec: DecoderSpec, rng: np.random.Generator,
                edit: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, str]:
    """Re-render ``image`` (h, w, 3) float32 in [0, 1], h and w divisible by 2**depth.

    ``edit`` maps the latent image (h / 2**depth, w / 2**depth, 3) in [0, 1] to its edited version.
    Returns the output (h, w, 3) float32 in [0, 1] and the upsampler description for the manifest.
    """
    h, w = image.shape[:2]
    if h % (1 << spec.depth) or w % (1 << spec.depth):
        raise ValueError(f"image {h}x{w} is not divisible by 2**{spec.depth}")
    with torch.no_grad():
        x = as_tensor(image.transpose(2, 0, 1)[None] * 2.0 - 1.0)  # (1, 3, h, w) in [-1, 1]
        down_kernel = None
        if spec.encoder == "strided_conv":
            base = np.array([0.125, 0.375, 0.375, 0.125])
            k = perturbed_kernel(base, 1, 0.5 * spec.strength, rng, gain=1.0)
            down_kernel = as_tensor(np.repeat(k, 3, axis=0))  # (3, 1, 4, 4) depthwise
        levels, indices = [x], []
        for _ in range(spec.depth):
            nxt, idx = _down(levels[-1], spec.encoder, down_kernel)
            levels.append(nxt)
            indices.append(idx)

        latent = levels[-1]
        if edit is not None:
            edited = edit((latent[0].numpy().transpose(1, 2, 0) + 1.0) * 0.5)
            latent = as_tensor(edited.transpose(2, 0, 1)[None] * 2.0 - 1.0)

        channels = 3
        lift = project = None
        if spec.kind == "conv_decoder":
            channels = int(rng.choice([6, 8, 12]))
            q, _ = np.linalg.qr(rng.normal(size=(channels, 3)))  # (C, 3), orthonormal columns
            lift, project = as_tensor(q[:, :, None, None]), as_tensor(q.T[:, :, None, None])
        lifted = (lambda t: F.conv2d(t, lift)) if lift is not None else (lambda t: t)

        names = []
        y = lifted(latent)
        for step, level in enumerate(range(spec.depth - 1, -1, -1)):
            up: Upsampler = make_upsampler(spec.families[step], channels, spec.strength, rng)
            names.append(up.name)
            idx = indices[level] if channels == 3 else None
            post = _post_layer(spec, channels, rng)
            if spec.noise > 0:
                shape = (1, 1, *y.shape[-2:])
                n = 0.8 * rng.normal(size=shape) + 0.45 * rng.normal(size=(1, channels, *y.shape[-2:]))
                y = y + 2.0 * spec.noise * as_tensor(n)  # ×2: [0, 1] units → [-1, 1]
            u = post(up(y, idx))
            skip = lifted(levels[level]) - up(lifted(levels[level + 1]), idx)
            y = u + spec.retention[step] * skip
        if project is not None:
            y = F.conv2d(y, project)
        out = ((y[0].numpy().transpose(1, 2, 0) + 1.0) * 0.5).clip(0.0, 1.0).astype(np.float32)
    label = names[0] if spec.kind == "single" else f"{spec.kind}({'+'.join(names)})"
    return out, label


def _post_layer(spec: DecoderSpec, channels: int, rng: np.random.Generator):
    """The convolutions after an upsampling layer: none, a perturbed depthwise 3×3, or (conv decoder)
    a multi-channel 3×3 plus a small LeakyReLU residual branch."""
    if spec.kind != "conv_decoder":
        if rng.random() < 0.5:
            return lambda t: t
        k = as_tensor(refine_kernel(channels, spec.strength, rng))
        return lambda t: F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), k, groups=channels)
    mix = as_tensor(perturbed_kernel(np.array([0.0, 1.0, 0.0]), channels, spec.strength, rng, gain=1.0))
    branch = as_tensor(rng.normal(size=(channels, channels, 3, 3)) * np.sqrt(2.0 / (9 * channels)))
    beta = float(rng.uniform(0.03, 0.12))

    def post(t):
        t = F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), mix)
        return t + beta * F.conv2d(F.pad(F.leaky_relu(t, 0.2), (1, 1, 1, 1), mode="replicate"), branch)

    return post


def draw_spec(rng: np.random.Generator, cfg, *, strength_boost: float = 1.0) -> DecoderSpec:
    """Draw depth, encoder, decoder kind, per-level families and skip retentions from ``cfg``."""
    depth = int(choice(rng, cfg.depth_weights))
    encoder = choice(rng, cfg.encoder_weights)
    kind = choice(rng, cfg.decoder_weights)
    table = cfg.family_weights
    if kind == "conv_decoder":
        table = {f: v for f, v in table.items() if f in CONV_DECODER_FAMILIES} or {"transposed_conv": 1.0}
    if kind == "single":
        families = (choice(rng, table),) * depth
    else:
        families = tuple(choice(rng, table) for _ in range(depth))
    lo, hi = cfg.skip_retention
    retention = tuple(float(rng.uniform(lo, hi)) / strength_boost for _ in range(depth))
    strength = log_uniform(rng, *cfg.texture_strength) * strength_boost
    noise = log_uniform(rng, *cfg.decoder_noise) * strength_boost
    return DecoderSpec(depth, encoder, kind, families, retention, strength, noise)
