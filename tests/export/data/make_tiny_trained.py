"""Make ``tiny_trained.safetensors``: a tiny FakeLocator network trained briefly on synthetic data.

The fp16 parity bound is a statement about *trained* weights (random ones put the sigmoid in its
steep middle and say little), and training at test time would cost more than the whole export test
set, so the weights are made once by this script and checked in (0.2 MB).

The task: 64×64 smooth random textures; half of them carry a rectangle with a faint checkerboard
added (the high-frequency trace of a transposed-convolution upsampler); the map must find the
rectangle and the score must say whether there is one. Seeded; run from the repository root:

    .venv/bin/python tests/export/data/make_tiny_trained.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fakelocator.contract import Preprocessing, to_network_input
from fakelocator.training.checkpoint import save_weights
from fakelocator.training.config import ModelConfig
from fakelocator.training.model import build_model

SIZE = 64
CONFIG = ModelConfig(
    unet_width=4,
    classifier_channels=(16, 16, 8, 8),
    classifier_hidden=(32, 16),
    preprocessing=Preprocessing(height=SIZE, width=SIZE),
)
OUT = Path(__file__).with_name("tiny_trained.safetensors")


def synthetic_batch(rng: np.random.Generator, n: int, size: int = SIZE):
    """uint8 images (N, size, size, 3), masks (N, 1, size, size), labels (N, 1); odd items are manipulated."""
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, 1, size, size), np.float32)
    labels = np.zeros((n, 1), np.float32)
    for i in range(n):
        low = torch.from_numpy(rng.uniform(0, 255, (1, 3, 8, 8)).astype(np.float32))
        base = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
        base = base + rng.normal(0, 12, base.shape)
        if i % 2:
            h, w = rng.integers(12, 40, 2)
            y, x = rng.integers(0, size - h), rng.integers(0, size - w)
            checker = (np.indices((h, w)).sum(0) % 2) * 2.0 - 1.0  # (h, w) of ±1
            base[y:y + h, x:x + w] += 20.0 * checker[:, :, None]
            masks[i, 0, y:y + h, x:x + w] = 1.0
            labels[i] = 1.0
        images[i] = np.clip(base, 0, 255).astype(np.uint8)
    return images, masks, labels


def train(steps: int = 300, seed: int = 0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(CONFIG).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        images, masks, labels = synthetic_batch(rng, 8)
        x = torch.from_numpy(np.stack([to_network_input(im, CONFIG.preprocessing, "RGB") for im in images]))
        out = model(x)
        loss = F.binary_cross_entropy(out["map"], torch.from_numpy(masks))
        loss = loss + F.binary_cross_entropy_with_logits(out["logit"], torch.from_numpy(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.3f}")
    return model.eval(), steps, seed


def main():
    model, steps, seed = train()
    images, masks, labels = synthetic_batch(np.random.default_rng(1), 64)
    x = torch.from_numpy(np.stack([to_network_input(im, CONFIG.preprocessing, "RGB") for im in images]))
    with torch.no_grad():
        out = model(x)
    accuracy = float(((out["score"] > 0.5).float() == torch.from_numpy(labels)).float().mean())
    hit = (out["map"] > 0.5).float()
    truth = torch.from_numpy(masks)
    iou = float((hit * truth).sum() / ((hit + truth) > 0).float().sum())
    print(f"held-out: score accuracy {accuracy:.2f}, map IoU {iou:.2f}")
    provenance = {
        "data": "synthetic blocky-upsampling rectangles (tests/export/data/make_tiny_trained.py)",
        "steps": steps, "seed": seed, "heldout_accuracy": round(accuracy, 3), "heldout_iou": round(iou, 3),
        "torch": torch.__version__,
    }
    save_weights(OUT, model, provenance=provenance)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
