"""``unet_res``: the default model's network, a residual U-Net sized for native-scale tiles.

Why this shape (the map is the product, and it must run on 2 CPU cores):

- the upsampling trace lives in the highest frequencies, so the first stage works at full
  resolution on the image and its fixed high-pass residuals (``ForensicStem``), and nothing strides
  before the first two 3 × 3 convolutions have seen the raw pixels;
- the decision "is this texture the trace of an upsampler" needs a receptive field of several
  periods (up to 8 px for a 3-level generator) and the region's extent needs context, so the
  capacity sits at strides 8 and 16 (about 85 % of the parameters) where it costs little compute,
  with dilated residual blocks widening the context without more striding;
- the decoder goes back to full resolution through every skip (thin at full resolution: the map
  is smooth at the scale of a region, sharp only at its border).

Parameters for the default ``widths=(8, 16, 32, 128, 256)``: 2.07 M, of which the map path (encoder +
decoder) is 2.04 M and the classifier 33 k. Compute: 2.56 GFLOP per 256 × 256 tile (counted from
the ONNX graph by ``benchmarks/flops.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fakelocator.training.layers import StagedEncoder, conv_bn_relu


class ForensicStem(nn.Module):
    """(N, 3, H, W) → (N, 12, H, W): the image, its residual after a 3 × 3 box blur, and its
    second differences along x and y, each residual scaled by ``gain``.

    The box residual catches smoothness and zero-filled unpooling; the second differences
    ([1, -2, 1]) are the filters that answer most strongly to period-2 patterns (checkerboards of
    transposed convolutions, pixel-shuffle grids), the commonest GAN upsampling trace. Fixed, not
    learned (forensic networks use SRM or constrained first layers for the same reason); edge
    padding keeps the image border from reading as texture.
    """

    out_channels = 12

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = F.pad(x, (1, 1, 1, 1), mode="replicate")
        box = x - F.avg_pool2d(p, 3, stride=1)
        dxx = p[:, :, 1:-1, :-2] - 2 * x + p[:, :, 1:-1, 2:]
        dyy = p[:, :, :-2, 1:-1] - 2 * x + p[:, :, 2:, 1:-1]
        g = self.gain
        return torch.cat([x, g * box, (g / 4) * dxx, (g / 4) * dyy], dim=1)


class ResBlock(nn.Module):
    """Two 3 × 3 convolutions with a skip; ``dilation`` widens the receptive field at no cost."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        d = dilation
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=d, dilation=d, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=d, dilation=d, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(x + self.bn2(self.conv2(y)), inplace=True)


class UNetResEncoder(StagedEncoder):
    """Five stages at strides 1, 2, 4, 8, 16; returns every stage, deepest last (its decoder is
    ``layers.UNetDecoder(widths)``)."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.stem = ForensicStem()
        self.stages = nn.ModuleList([
            nn.Sequential(conv_bn_relu(ForensicStem.out_channels, w0), conv_bn_relu(w0, w0)),
            nn.Sequential(conv_bn_relu(w0, w1, stride=2), ResBlock(w1)),
            nn.Sequential(conv_bn_relu(w1, w2, stride=2), ResBlock(w2)),
            nn.Sequential(conv_bn_relu(w2, w3, stride=2), ResBlock(w3, dilation=2)),
            nn.Sequential(conv_bn_relu(w3, w4, stride=2), ResBlock(w4, dilation=2)),
        ])
        self.out_channels = w4
        self.stride = 16


class PooledClassifier(nn.Module):
    """The tile's real/fake logit from the deepest features: global average and max pooling, two FC layers.

    Global pooling makes it independent of the input size (a tile, a face crop, a whole image), and
    max pooling lets a small manipulated region decide the score.
    """

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([feats.mean(dim=(2, 3)), feats.amax(dim=(2, 3))], dim=1)
        return self.fc(pooled)  # (N, 1) logit
