"""A freshly drawn, randomly initialised GAN-like encoder–decoder, applied at the image's own pixels.

Every call draws a new network, built the way GAN generators are:

- **encoder**: ``k`` (1–3) halvings of the image — average pooling (area), a Gaussian pyramid step
  (``pyrdown``) or a strided random 4×4 convolution — giving the levels ``X[0] = image … X[k]``;
- **latent**: ``X[k]`` lifted to ``C[k]`` feature channels by an orthonormal 3→C map ``Q[k]``, plus
  a little invented content (per-pixel noise, as StyleGAN's noise inputs);
- **k upsampling blocks** (coarse to fine), each: one ×2 upsampling layer — a transposed convolution
  (kernel 2, 3 or 4, stride 2), a convolution to 4·C channels then pixel shuffle, or nearest /
  bilinear upsampling then a 3×3 convolution — whose weights start from the ones that would
  interpolate the image content exactly (``Q[j] Q[j+1]ᵀ`` times an interpolating kernel) plus random
  noise of relative size ``strength``; then a residual branch ``conv(act(norm(conv(y))))`` with
  He-initialised random weights (norm: batch (eval-mode statistics), instance or none; act: ReLU,
  LeakyReLU or tanh), and a skip connection that adds back a fraction ``a`` of the detail the
  encoder removed at that level;
- **output**: back to RGB (``Q[j]ᵀ``). The two finest blocks work on the RGB channels themselves
  (``FEATURE_LEVEL``): their ×2 layer is computed as four 3×3 filters, one per output phase, read
  from the single-channel torch layer's impulse response, plus per-phase colour mixes, and their
  residual branch as shared 3×3 filters and colour mixes — with OpenCV, a few milliseconds at 320².

The output keeps the image's content (perturbed weights, not learned ones, so the content must come
through the interpolating part) but carries the decoder's trace: the output phases of each ×2 layer
no longer balance, a period-2 (checkerboard) pattern at the image's own pixels from the last block,
periods 4 and 8 from the earlier ones, and detail lost where ``a < 1``. ``gan_resynthesize`` then
removes most of the difference's slow part (a tint: colour matching, as face swaps do) and scales
the rest so that its mean Eq. 7 value is a drawn target (2–15 grey levels by default): visible,
and the size of what real generators leave.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from fakelocator.training.synth.sampling import log_uniform

UP_LAYERS = ("tconv", "pixelshuffle", "resize_conv")
ENCODERS = ("avgpool", "pyrdown", "strided_conv")
NORMS = ("batch", "instance", "none")
ACTIVATIONS = ("relu", "leaky", "tanh")
LUMA = np.asarray((0.299, 0.587, 0.114), np.float32)
#: Blocks whose output level is at least this (a quarter of the pixels or fewer) run on feature
#: channels in torch; the finer ones on RGB with OpenCV.
FEATURE_LEVEL = 2

# 1-D kernels whose stride-2 transposed convolution interpolates exactly (sum 2 = two output phases).
_TCONV_1D = {2: np.array([1.0, 1.0]), 3: np.array([0.5, 1.0, 0.5]), 4: np.array([0.25, 0.75, 0.75, 0.25])}
# The two output phases of ×2 bilinear interpolation as 3-tap kernels (taps at -1, 0, +1).
_PHASE_1D = (np.array([0.25, 0.75, 0.0]), np.array([0.0, 0.75, 0.25]))


@dataclass(frozen=True)
class GanSpec:
    """What is drawn about one decoder, except its random weights."""

    depth: int  # k: number of ×2 levels
    encoder: str
    layers: tuple[str, ...]  # per block, coarsest first: "tconv2|3|4", "pixelshuffle", "nearest_conv"…
    channels: tuple[int, ...]  # C[0] (full resolution) … C[k] (latent); 3 (RGB) at levels 0 and 1
    norm: str
    activation: str
    strength: float  # relative noise on the interpolating weights
    residual: float  # gain of each block's random residual branch
    skip: tuple[float, ...]  # detail fraction a per block, coarsest first
    noise: float  # std of invented latent content, [-1, 1] units
    target: float  # mean Eq. 7 difference of the output, in [0, 1] units

    @property
    def label(self) -> str:
        return f"gan[{self.encoder}/{'+'.join(self.layers)}/{self.norm}/{self.activation}/C{self.channels[-1]}]"


def draw_gan_spec(rng: np.random.Generator, layers: tuple[str, ...] = UP_LAYERS,
                  target: tuple[float, float] = (2.0 / 255, 15.0 / 255)) -> GanSpec:
    """Draw a decoder whose blocks use the upsampling layers in ``layers`` (one drawn per block)."""
    depth = int(rng.integers(1, 4))
    encoder = ENCODERS[int(rng.integers(len(ENCODERS)))]
    names = []
    for _ in range(depth):
        kind = layers[int(rng.integers(len(layers)))]
        if kind == "tconv":
            kind = f"tconv{int(rng.integers(2, 5))}"
        elif kind == "resize_conv":
            kind = ("nearest_conv", "bilinear_conv")[int(rng.integers(2))]
        names.append(kind)
    width = int((4, 6, 8)[int(rng.integers(3))])  # feature channels at a quarter resolution
    # RGB at the two finest levels; features below, doubling per level (at most 16); the latent
    # always has features (its residual block runs on them)
    channels = tuple(3 if j < FEATURE_LEVEL and j < depth else min(16, width << max(0, j - FEATURE_LEVEL))
                     for j in range(depth + 1))
    if depth < FEATURE_LEVEL:  # a latent at half resolution: fewer features, its block is costly
        channels = channels[:-1] + (4,)
    return GanSpec(
        depth=depth, encoder=encoder, layers=tuple(names), channels=channels,
        norm=NORMS[int(rng.integers(len(NORMS)))], activation=ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))],
        strength=log_uniform(rng, 0.05, 0.4), residual=log_uniform(rng, 0.02, 0.2),
        skip=tuple(float(rng.uniform(0.0, 1.0)) for _ in range(depth)),
        noise=log_uniform(rng, 0.003, 0.03), target=log_uniform(rng, *target),
    )


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _orthonormal(rng, c: int) -> np.ndarray:
    """(c, 3) with orthonormal columns: where the image's RGB lives among c feature channels."""
    q, r = np.linalg.qr(rng.normal(size=(c, 3)))
    return q * np.sign(np.diag(r))[None, :]


def _zero_sum(rng, shape, scale) -> np.ndarray:
    n = rng.normal(size=shape)
    return (n - n.mean(axis=(-2, -1), keepdims=True)) * scale


def _encode(x: np.ndarray, spec: GanSpec, rng) -> list[np.ndarray]:
    """Levels X[0..k] of ``x`` (h, w, 3) float32, h and w divisible by 2**k."""
    import cv2

    levels = [x]
    kernel = None
    if spec.encoder == "strided_conv":
        base = np.outer([0.125, 0.375, 0.375, 0.125], [0.125, 0.375, 0.375, 0.125])
        kernel = (base + _zero_sum(rng, (4, 4), 0.5 * spec.strength * base.max())).astype(np.float32)
    for _ in range(spec.depth):
        cur = levels[-1]
        h, w = cur.shape[:2]
        if spec.encoder == "avgpool":
            nxt = cv2.resize(cur, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        elif spec.encoder == "pyrdown":
            nxt = cv2.pyrDown(cur, dstsize=(w // 2, h // 2))
        else:  # a 4×4 stride-2 convolution: filter at the odd phase, then take every second pixel
            nxt = cv2.filter2D(cur, -1, kernel, anchor=(1, 1), borderType=cv2.BORDER_REFLECT)[::2, ::2]
        levels.append(np.ascontiguousarray(nxt))
    return levels


def _up_layer(kind: str, c_in: int, c_out: int, base_map: np.ndarray, strength: float, rng):
    """One ×2 layer (C_in → C_out) as a function of a (1, C_in, h, w) tensor."""
    if kind.startswith("tconv"):
        k = int(kind[-1])
        b = np.outer(_TCONV_1D[k], _TCONV_1D[k])  # sums to 4: each output pixel gets weight 1
        w = base_map.T[:, :, None, None] * b + _zero_sum(rng, (c_in, c_out, k, k), strength * b.max())
        weight = _t(w)  # conv_transpose2d weights are (C_in, C_out, k, k)
        pad, out_pad = {2: (0, 0), 3: (1, 1), 4: (1, 0)}[k]
        return lambda y: F.conv_transpose2d(y, weight, stride=2, padding=pad, output_padding=out_pad)
    if kind == "pixelshuffle":
        w = np.zeros((c_out, 4, c_in, 3, 3))
        for p in range(4):
            kern = np.outer(_PHASE_1D[p // 2], _PHASE_1D[p % 2])
            w[:, p] = base_map[:, :, None, None] * kern
        # each phase's kernel gets its own noise, gains included: the phases drift apart (checkerboard)
        w = w + rng.normal(size=w.shape) * strength * 0.5625 / 3.0
        weight = _t(w.reshape(c_out * 4, c_in, 3, 3))
        return lambda y: F.pixel_shuffle(F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), weight), 2)
    mode = "nearest" if kind == "nearest_conv" else "bilinear"
    lam = rng.uniform(0.0, 1.0) if mode == "nearest" else rng.uniform(0.0, 0.4)
    smooth = np.outer([0.25, 0.5, 0.25], [0.25, 0.5, 0.25])
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    b = (1 - lam) * delta + lam * smooth
    w = base_map[:, :, None, None] * b + _zero_sum(rng, (c_out, c_in, 3, 3), strength * 0.5)
    weight = _t(w)

    def up(y):
        y = F.interpolate(y, scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
        return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), weight)

    return up


def _residual_branch(c: int, spec: GanSpec, rng):
    """``gain · conv(act(norm(conv(y))))`` on (1, C, h, w) tensors, He-initialised random weights."""
    w1 = _t(rng.normal(size=(c, c, 3, 3)) * math.sqrt(2.0 / (9 * c)))
    b1 = _t(rng.normal(size=c) * 0.1)
    w2 = _t(rng.normal(size=(c, c, 3, 3)) * math.sqrt(2.0 / (9 * c)))
    mean, std = _t(rng.normal(size=(1, c, 1, 1)) * 0.2), _t(np.exp(rng.normal(size=(1, c, 1, 1)) * 0.3) * 0.3)
    act = {"relu": F.relu, "leaky": lambda t: F.leaky_relu(t, 0.2), "tanh": torch.tanh}[spec.activation]
    gain = spec.residual

    def branch(y):
        t = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), w1, b1)
        if spec.norm == "instance":
            t = F.instance_norm(t)
        elif spec.norm == "batch":  # eval-mode batch norm: fixed (drawn) running statistics
            t = (t - mean) / std
        t = F.conv2d(F.pad(act(t), (1, 1, 1, 1), mode="replicate"), w2)
        return gain * t

    return branch


# --- the two finest blocks: RGB channels, OpenCV ------------------------------------------------

_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def phase_kernels(up) -> np.ndarray:
    """The four 3×3 correlation kernels (phase (dy, dx) in ``_PHASES`` order) of a single-channel
    ×2 layer ``up`` (a function of a (1, 1, h, w) tensor), read from its response to an impulse:
    ``out[2m + dy, 2n + dx] = Σ_ab K[a, b] · x[m + a − 1, n + b − 1]`` away from the borders."""
    impulse = torch.zeros(1, 1, 9, 9)
    impulse[0, 0, 4, 4] = 1.0
    with torch.no_grad():
        r = up(impulse)[0, 0].numpy()  # (18, 18)
    k = np.empty((4, 3, 3), np.float32)
    for p, (dy, dx) in enumerate(_PHASES):
        for a in range(3):
            for b in range(3):
                k[p, a, b] = r[2 * (5 - a) + dy, 2 * (5 - b) + dx]
    return k


def _rgb_up(z: np.ndarray, kernels: np.ndarray, mixes: np.ndarray) -> np.ndarray:
    """(h, w, 3) → (2h, 2w, 3): each output phase is a 3×3 filter of the input, then a colour mix."""
    import cv2

    h, w = z.shape[:2]
    out = np.empty((2 * h, 2 * w, 3), np.float32)
    for p, (dy, dx) in enumerate(_PHASES):
        phase = cv2.filter2D(z, -1, kernels[p], borderType=cv2.BORDER_REPLICATE)
        out[dy::2, dx::2] = cv2.transform(phase, mixes[p])
    return out


def _rgb_residual(spec: GanSpec, rng):
    """The residual branch on RGB: a shared 3×3 kernel, a colour mix, norm, act, and again. The
    per-channel affine maps (bias, batch or instance norm, gain) are folded into OpenCV transforms."""
    import cv2

    k1, k2 = (rng.normal(size=(2, 3, 3)) * math.sqrt(2.0 / 9)).astype(np.float32)
    m1, m2 = rng.normal(size=(2, 3, 3)) * math.sqrt(2.0 / 3)
    b1 = rng.normal(size=3) * 0.1
    mean, std = rng.normal(size=3) * 0.2, np.exp(rng.normal(size=3) * 0.3) * 0.3
    if spec.norm == "batch":  # eval-mode batch norm: fixed (drawn) running statistics
        first = np.hstack([m1 / std[:, None], ((b1 - mean) / std)[:, None]]).astype(np.float32)
    else:
        first = np.hstack([m1, b1[:, None]]).astype(np.float32)
    second = (m2 * spec.residual).astype(np.float32)

    def branch(y: np.ndarray) -> np.ndarray:
        t = cv2.transform(cv2.filter2D(y, -1, k1, borderType=cv2.BORDER_REPLICATE), first)
        if spec.norm == "instance":
            mu, sd = cv2.meanStdDev(t)
            inv = 1.0 / np.maximum(sd.ravel(), 1e-3)
            t = cv2.transform(t, np.hstack([np.diag(inv), (-mu.ravel() * inv)[:, None]]).astype(np.float32))
        if spec.activation == "relu":
            np.maximum(t, 0.0, out=t)
        elif spec.activation == "leaky":
            np.maximum(t, np.float32(0.2) * t, out=t)
        else:
            torch.from_numpy(t).tanh_()
        return cv2.transform(cv2.filter2D(t, -1, k2, borderType=cv2.BORDER_REPLICATE), second)

    return branch


def _rgb_layer(kind: str, spec: GanSpec, rng):
    """A ×2 layer on RGB: a single-channel ``kind`` layer as phase kernels, and colour mixes that
    are the same for every phase (interpolate-then-convolve) or drift per phase (sub-pixel layers)."""
    kernels = phase_kernels(_up_layer(kind, 1, 1, np.ones((1, 1)), spec.strength, rng))
    mix = np.eye(3) + rng.normal(size=(3, 3)) * 0.1 * spec.strength
    drift = 0.0 if kind.endswith("_conv") else 0.25 * spec.strength
    mixes = (mix[None] + rng.normal(size=(4, 3, 3)) * drift).astype(np.float32)
    return lambda z: _rgb_up(z, kernels, mixes)


_BANK_SIDE = 512


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed (512, 512, 4) block of standard normal values: invented content is cut from it at a
    random offset (drawing fresh normals for every level costs more than the rest of the block)."""
    return np.random.default_rng(20241204).standard_normal((_BANK_SIDE, _BANK_SIDE, 4), np.float32)


def _invented(rng, h: int, w: int, amount: float) -> np.ndarray:
    """(h, w, 3) content a level invents (StyleGAN's noise inputs): mostly shared across channels."""
    bank = _noise_bank()
    reps = (-(-h // _BANK_SIDE), -(-w // _BANK_SIDE))
    if reps != (1, 1):  # larger than the bank: tile it (a repeat period of 512 px is no ×2 trace)
        bank = np.tile(bank, (*reps, 1))
    y0, x0 = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
    block = bank[y0:y0 + h, x0:x0 + w]
    c = int(rng.integers(4))  # which channel is the shared part
    mix = np.full((3, 4), 0.45, np.float32) * rng.choice((-1.0, 1.0), size=(3, 4)).astype(np.float32)
    mix[:, c] = 0.8
    others = [i for i in range(4) if i != c]
    for ch in range(3):  # the other channels: one each, per output channel
        mix[ch, [i for i in others if i != others[ch]]] = 0.0
    import cv2

    return cv2.transform(block, mix * np.float32(amount))


def run_gan(image: np.ndarray, spec: GanSpec, rng: np.random.Generator) -> np.ndarray:
    """The decoder's output for ``image`` (h, w, 3) float32 in [-1, 1], h and w divisible by 2**k.

    Blocks whose output has a quarter of the pixels or fewer, and the latent's own residual block,
    run in torch on ``C`` feature channels; the two finest blocks run on the RGB channels with
    OpenCV (a 3×3 filter per output phase and colour mixes), which keeps a full-resolution block
    at a few milliseconds.
    """
    import cv2

    levels = _encode(image, spec, rng)
    k = spec.depth
    latent = levels[k] + _invented(rng, *levels[k].shape[:2], spec.noise)
    c = spec.channels[k]
    q = _orthonormal(rng, c)  # (C, 3)
    with torch.no_grad():
        y = _t(latent @ q.T).permute(2, 0, 1)[None]  # (1, C, h, w)
        y = y + _residual_branch(c, spec, rng)(y)
        step = 0
        for j in range(k - 1, FEATURE_LEVEL - 1, -1):  # feature blocks (only when k > FEATURE_LEVEL)
            if step > 0:
                y = y + _t(_invented(rng, *y.shape[-2:], spec.noise) @ q.T).permute(2, 0, 1)[None]
            q_next = _orthonormal(rng, spec.channels[j])
            up = _up_layer(spec.layers[step], c, spec.channels[j], q_next @ q.T, spec.strength, rng)
            c, q = spec.channels[j], q_next
            y = up(y)
            y = y + _residual_branch(c, spec, rng)(y)
            if spec.skip[step] > 0:
                xj, xn = levels[j], levels[j + 1]
                detail = xj - cv2.resize(xn, (xj.shape[1], xj.shape[0]), interpolation=cv2.INTER_LINEAR)
                y = y + spec.skip[step] * _t(detail @ q.T).permute(2, 0, 1)[None]
            step += 1
        z = np.ascontiguousarray((y[0].permute(1, 2, 0).numpy() @ q).astype(np.float32))  # back to RGB
    for j in range(min(k, FEATURE_LEVEL) - 1, -1, -1):  # RGB blocks
        if step > 0:  # the latent already had its invented content
            z = z + _invented(rng, *z.shape[:2], spec.noise)
        z = _rgb_layer(spec.layers[step], spec, rng)(z)
        z = z + _rgb_residual(spec, rng)(z)
        if spec.skip[step] > 0:
            xj, xn = levels[j], levels[j + 1]
            z += np.float32(spec.skip[step]) * (xj - cv2.resize(xn, (xj.shape[1], xj.shape[0]), interpolation=cv2.INTER_LINEAR))
        step += 1
    return z


def calibrate(real: np.ndarray, rendered: np.ndarray, target: float, max_gain: float = 2.0) -> np.ndarray:
    """``real + s · (rendered − real)`` as uint8, ``s`` chosen so its mean Eq. 7 value is ``target``.

    ``real`` uint8 (H, W, 3), ``rendered`` float32 (H, W, 3) in grey levels. ``s`` is at most
    ``max_gain`` (a decoder that changed almost nothing is not blown up into noise).
    """
    import cv2

    base = real.astype(np.float32)
    diff = rendered - base
    mean = float(np.dot(cv2.mean(np.abs(diff))[:3], LUMA)) / 255.0
    s = min(max_gain, target / mean) if mean > 0 else 0.0
    return np.clip(np.rint(base + np.float32(s) * diff), 0, 255).astype(np.uint8)


def gan_resynthesize(real: np.ndarray, rng: np.random.Generator, layers: tuple[str, ...] = UP_LAYERS) -> np.ndarray:
    """``real`` uint8 (H, W, 3) re-rendered by a fresh random GAN-like decoder (module docstring)."""
    import cv2

    spec = draw_gan_spec(rng, layers)
    h, w = real.shape[:2]
    unit = 1 << spec.depth
    ph, pw = (-h) % unit, (-w) % unit
    x = real.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    if ph or pw:
        x = cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)
    out = (run_gan(x, spec, rng)[:h, :w] + np.float32(1.0)) * np.float32(127.5)
    # colour matching, as a face swap's blending does: most of the difference's slow part (a global
    # tint from random colour mixes and biases) goes, its local part (the trace, lost detail) stays
    diff = out - real.astype(np.float32)
    out -= np.float32(rng.uniform(0.6, 1.0)) * cv2.blur(diff, (15, 15), borderType=cv2.BORDER_REFLECT)
    return calibrate(real, out, spec.target)
