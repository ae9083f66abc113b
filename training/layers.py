"""Building blocks the U-Net backbones share (``model.py``'s ``unet_lite``, ``unet_res.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class StagedEncoder(nn.Module):
    """A fixed ``stem`` then ``stages`` applied in turn; returns every stage's output, deepest last.

    Subclasses set ``stem``, ``stages`` (an ``nn.ModuleList``), ``out_channels`` and ``stride``.
    """

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class UNetDecoder(nn.Module):
    """Top-down over encoder stages of ``widths`` channels (shallowest first): project the deeper map
    to the shallower width (1 × 1), upsample × 2 (bilinear), add the skip, refine (3 × 3); a 1 × 1 head
    gives (N, 1, H, W) logits at the shallowest stage's resolution."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        n = len(widths)
        self.project = nn.ModuleList([nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(n - 1)])
        self.refine = nn.ModuleList([conv_bn_relu(widths[i], widths[i]) for i in range(n - 1)])
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for i in range(len(feats) - 2, -1, -1):
            skip = feats[i]
            x = F.interpolate(self.project[i](x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.refine[i](x + skip)
        return self.head(x)
