"""The torch module that becomes the ONNX graph.

``ExportGraph`` wraps a ``FakeLocatorNet`` and returns the exported tensors in the contract's order:
``map`` (N, 1, H, W), ``score`` (N, 1), ``features`` (N, C).

With dynamic height and width, the classifier branch needs one change. Its adaptive average pool
(``F.adaptive_avg_pool2d`` to the grid the fully connected layers were built for) is skipped by a
Python ``if`` at the model's own input size, and both ONNX exporters trace that ``if`` once and
silently drop the pool, so the exported graph fails (or worse) at any other size. ONNX has no
adaptive pool. ``MatrixAdaptivePool`` computes the same pool as two matrix products whose pooling
matrices are built from the runtime size (``Range``, integer arithmetic, ``MatMul``), which both
exporters and ONNX Runtime handle with dynamic shapes. At the model's own size the matrices are
identities. Parity with ``F.adaptive_avg_pool2d`` at other sizes is tested.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fakelocator.training.model import ClassifierBranch, FakeLocatorNet


def pooling_matrix(n_in: torch.Tensor | int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) matrix whose row i averages input cells [floor(i·n_in/n_out), ceil((i+1)·n_in/n_out)).

    These are exactly ``adaptive_avg_pool``'s windows.
    """
    i = torch.arange(n_out, device=like.device)
    start = (i * n_in) // n_out
    end = ((i + 1) * n_in + n_out - 1) // n_out
    j = torch.arange(n_in, device=like.device)
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


class MatrixAdaptivePool(nn.Module):
    """The classifier branch of ``FakeLocatorNet`` with its adaptive pool written as matrix products."""

    def __init__(self, branch: ClassifierBranch):
        super().__init__()
        self.branch = branch

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b = self.branch
        x = b.pool(b.convs(feats))  # (N, C, h, w)
        rows = pooling_matrix(x.shape[-2], b.grid[0], x)  # (gh, h)
        cols = pooling_matrix(x.shape[-1], b.grid[1], x)  # (gw, w)
        x = torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))  # (N, C, gh, gw)
        return b.fc(torch.flatten(x, 1))  # (N, 1) logit


class ExportGraph(nn.Module):
    """``image`` (N, 3, H, W) → (``map`` (N, 1, H, W), ``score`` (N, 1), ``features`` (N, C))."""

    def __init__(self, model: FakeLocatorNet, *, dynamic_hw: bool = False):
        super().__init__()
        net = copy.deepcopy(model).float().cpu().eval()
        # Only the grid-pooling branch needs it; a globally pooled classifier (unet_res's
        # PooledClassifier: mean and max over H, W) exports with dynamic shapes as it is.
        if dynamic_hw and isinstance(net.classifier, ClassifierBranch):
            net.classifier = MatrixAdaptivePool(net.classifier)
        self.net = net.eval()

    def forward(self, image: torch.Tensor):
        out = self.net(image)
        return out["map"], out["score"], out["features"]
