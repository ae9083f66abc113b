"""Validation during training: losses, detection and map quality at model resolution."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from fakelocator.training.losses import LossConfig, total_loss
from fakelocator.training.model import FakeLocatorNet
from fakelocator.training.progress import progress_bar
from fakelocator.training.train_data import to_device

#: PSNR of a map identical to its ground truth (the MSE is floored at 1e-10).
PSNR_CAP = 100.0


def map_quality(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image COSS (cosine similarity of the flattened maps) and PSNR in dB (peak 1) of (N, 1, h, w) maps."""
    p, t = pred.flatten(1).double(), target.flatten(1).double()
    coss = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1)).clamp_min(1e-12)
    mse = (p - t).pow(2).mean(1).clamp_min(10 ** (-PSNR_CAP / 10))
    return coss, -10 * torch.log10(mse)


@torch.no_grad()
def evaluate(
    model: FakeLocatorNet,
    loader: DataLoader,
    loss_config: LossConfig,
    device: torch.device,
    *,
    max_steps: int | None = None,
    progress: bool | None = None,
) -> dict[str, float | None]:
    """Validation metrics at model resolution.

    ``loss``/``map_loss``/``cls_loss``: as in training; ``acc``, ``real_acc``, ``fake_acc``: score
    thresholded at 0.5; ``auc``: ROC AUC of the score (None with a single class); ``coss`` and
    ``psnr``: mean per-image map quality over the fake (partial and entire) images.
    """
    from sklearn.metrics import roc_auc_score

    model.eval()
    sums = {"loss": 0.0, "map": 0.0, "cls": 0.0}
    scores, labels, coss, psnr = [], [], [], []
    total = len(loader) if max_steps is None else min(len(loader), max_steps)
    for step, batch in enumerate(progress_bar(loader, total=total, desc="validation", enabled=progress)):
        if max_steps is not None and step >= max_steps:
            break
        batch = to_device(batch, device)
        out = model(batch["image"])  # inference: no attention map (Sec. IV-C)
        parts = total_loss(out, batch["map"], batch["label"], loss_config)
        n = batch["image"].shape[0]
        for k in sums:
            sums[k] += parts[k].item() * n
        scores.append(out["score"].view(-1).float().cpu())
        labels.append(batch["label"].view(-1).cpu())
        fake = batch["label"].view(-1) > 0.5
        if fake.any():
            c, p = map_quality(out["map"][fake], batch["map"][fake])
            coss.append(c.cpu())
            psnr.append(p.cpu())
    score, label = torch.cat(scores).numpy(), torch.cat(labels).numpy()
    n = len(label)
    pred = score >= 0.5
    truth = label > 0.5

    def acc(mask):
        return float((pred[mask] == truth[mask]).mean()) if mask.any() else None

    both = truth.any() and (~truth).any()
    return {
        "loss": sums["loss"] / n,
        "map_loss": sums["map"] / n,
        "cls_loss": sums["cls"] / n,
        "acc": acc(np.ones(n, bool)),
        "real_acc": acc(~truth),
        "fake_acc": acc(truth),
        "auc": float(roc_auc_score(truth, score)) if both else None,
        "coss": float(torch.cat(coss).mean()) if coss else None,
        "psnr": float(torch.cat(psnr).mean()) if psnr else None,
        "images": n,
    }
