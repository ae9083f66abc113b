"""The FakeLocator network (paper Sec. IV-B, IV-C, V-A).

An encoder–decoder maps an image to a one-channel fakeness map at the input's resolution; a sigmoid
limits it to [0, 1]. Optional parts:

- a face-attention map (N, 1, H, W) multiplied channel-wise into the encoder features (Sec. IV-C).
  An all-ones ("white") map is the identity, and inference passes none;
- the classification branch of Sec. V-A on the encoder features: four 3×3 convolutions, a 2×2
  max-pool with stride 2, three fully connected layers and a sigmoid.

Contract: ``forward(x, attention=None)`` returns a dict with

- ``"map"``: (N, 1, H, W) fakeness in [0, 1] at the input's resolution;
- ``"score"``: (N, 1) probability that the image is fake (the classifier's, or, without one, the
  mean of the map's strongest 8×8 cell);
- ``"logit"``: (N, 1) classifier logit, or ``None`` without a classifier;
- ``"features"``: (N, C) globally averaged encoder features (the "features before the classifier"
  used by single-sample clustering, Sec. IV-D).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fakelocator.errors import FakeLocatorError
from fakelocator.training.config import ModelConfig
from fakelocator.training.layers import StagedEncoder, UNetDecoder, conv_bn_relu
from fakelocator.training.unet_res import PooledClassifier, UNetResEncoder

SCORE_CELL = 8  # pixels per side of the map cells whose strongest mean is the score without a classifier
#: Initial bias of the map's last layer: sigmoid(-4) ≈ 0.018. Most ground-truth pixels are near 0
#: (every real image, and the unmanipulated part of every fake), so starting near 0 instead of 0.5
#: spares the first epochs from unlearning a grey map (the prior-probability init of RetinaNet).
MAP_PRIOR_BIAS = -4.0


class HighPassStem(nn.Module):
    """(N, 3, H, W) → (N, 6, H, W): the image and ``gain`` × its residual after a 3×3 box blur.

    Upsampling texture (checkerboards, zero-filled unpooling, the over-smoothness of interpolation)
    is a property of the residual, which in a photo is small beside the content. Trained from
    scratch, a compact network finds it late; handing the residual over explicitly, as forensic
    networks do with SRM or constrained first layers, makes it the easy signal. Fixed, not learned,
    so it stays a high-pass filter. Edge padding keeps the image border from reading as texture.
    """

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return torch.cat([x, self.gain * (x - blurred)], dim=1)


class UNetLiteEncoder(StagedEncoder):
    """Four stages at strides 1, 2, 4, 8; returns every stage, deepest last.

    The first stage works at full resolution: the upsampling artifacts this model looks for
    (checkerboards, interpolation smoothness, zero-filled unpooling) live in the highest frequencies,
    which a backbone that strides by 4 before its first 3×3 convolution never sees.
    """

    def __init__(self, width: int, highpass_stem: bool = False):
        super().__init__()
        w = width
        self.stem = HighPassStem() if highpass_stem else nn.Identity()
        self.stages = nn.ModuleList([
            nn.Sequential(conv_bn_relu(6 if highpass_stem else 3, w), conv_bn_relu(w, w)),
            nn.Sequential(conv_bn_relu(w, 2 * w, stride=2), conv_bn_relu(2 * w, 2 * w)),
            nn.Sequential(conv_bn_relu(2 * w, 4 * w, stride=2), conv_bn_relu(4 * w, 4 * w)),
            nn.Sequential(
                conv_bn_relu(4 * w, 8 * w, stride=2),
                conv_bn_relu(8 * w, 8 * w),
                conv_bn_relu(8 * w, 8 * w, dilation=2),
            ),
        ])
        self.out_channels = 8 * w
        self.stride = 8


class UNetLiteDecoder(UNetDecoder):
    """The ``UNetDecoder`` over the four ``unet_lite`` stages (``width`` × 1, 2, 4, 8 channels)."""

    def __init__(self, width: int):
        super().__init__((width, 2 * width, 4 * width, 8 * width))


class ClassifierBranch(nn.Module):
    """Sec. V-A: four 3×3 convolutions, max-pool (k=2, s=2, p=0), three FC layers (sigmoid applied by the caller).

    An adaptive average pool sits between the max-pool and the FC layers. At the input size the model
    was built for it is the identity (its output grid equals its input grid); at other sizes it makes
    the fully connected layers still apply.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], hidden: tuple[int, int], grid: tuple[int, int]):
        super().__init__()
        layers, cin = [], in_channels
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
            cin = c
        self.convs = nn.Sequential(*layers)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.grid = grid
        self.fc = nn.Sequential(
            nn.Linear(cin * grid[0] * grid[1], hidden[0]),
            nn.ReLU(inplace=True),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(inplace=True),
            nn.Linear(hidden[1], 1),
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.convs(feats))
        if tuple(x.shape[-2:]) != self.grid:
            x = F.adaptive_avg_pool2d(x, self.grid)
        return self.fc(torch.flatten(x, 1))  # (N, 1) logit


class FakeLocatorNet(nn.Module):
    """Encoder → (× attention) → decoder → sigmoid map; classifier branch on the encoder features."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder, self.decoder, channels, stride = _build_backbone(config)
        self.feature_channels = channels
        h, w = config.preprocessing.size
        grid = (max(h // stride // 2, 1), max(w // stride // 2, 1))
        if not config.classifier:
            self.classifier = None
        elif config.backbone == "unet_res":
            self.classifier = PooledClassifier(channels)
        else:
            self.classifier = ClassifierBranch(channels, config.classifier_channels, config.classifier_hidden, grid)
        last = self.decoder.head if config.backbone.startswith("unet_") else self.decoder[-1]
        nn.init.constant_(last.bias, MAP_PRIOR_BIAS)

    def encode(self, x: torch.Tensor, attention: torch.Tensor | None = None):
        """Encoder features, with the face-attention map applied channel-wise when given."""
        if self.config.backbone.startswith("unet_"):
            feats = self.encoder(x)
            deepest = feats[-1]
        else:
            feats = None
            deepest = self.encoder(x)["out"]
        if attention is not None:
            if attention.dim() != 4 or attention.shape[1] != 1:
                raise ValueError(f"attention must be (N, 1, H, W), got {tuple(attention.shape)}")
            a = F.interpolate(attention.to(deepest.dtype), size=deepest.shape[-2:], mode="bilinear", align_corners=False)
            deepest = deepest * a
            if feats is not None:
                feats = feats[:-1] + [deepest]
        return feats, deepest

    def forward(self, x: torch.Tensor, attention: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        # x: (N, 3, H, W) normalized by the preprocessing contract
        feats, deepest = self.encode(x, attention)
        if self.config.backbone.startswith("unet_"):
            logits = self.decoder(feats)
        else:
            logits = self.decoder(deepest)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        fakeness = torch.sigmoid(logits)  # (N, 1, H, W), the limiting layer of Sec. IV-B
        if self.classifier is not None:
            logit = self.classifier(deepest)
            score = torch.sigmoid(logit)
        else:
            logit = None
            cells = F.avg_pool2d(fakeness, SCORE_CELL, ceil_mode=True)
            score = torch.amax(cells, dim=(2, 3))
        features = deepest.mean(dim=(2, 3))  # (N, C)
        return {"map": fakeness, "score": score, "logit": logit, "features": features}


def _build_backbone(config: ModelConfig) -> tuple[nn.Module, nn.Module, int, int]:
    """(encoder, decoder, encoder channels, encoder stride). Never downloads weights."""
    if config.backbone == "unet_lite":
        enc = UNetLiteEncoder(config.unet_width, config.highpass_stem)
        return enc, UNetLiteDecoder(config.unet_width), enc.out_channels, enc.stride
    if config.backbone == "unet_res":
        enc = UNetResEncoder(config.unet_res_widths)
        return enc, UNetDecoder(config.unet_res_widths), enc.out_channels, enc.stride

    from torchvision.models import segmentation

    builder = getattr(segmentation, config.backbone)
    net = builder(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
    if config.backbone.startswith("deeplabv3_resnet"):
        channels, stride = 2048, 8
    else:
        channels, stride = net.classifier[0].convs[0][0].in_channels, 16
    return net.backbone, net.classifier, channels, stride


def build_model(config: ModelConfig | None = None, *, pretrained_backbone: str | Path | None = None) -> FakeLocatorNet:
    """Build a FakeLocator network.

    Args:
        config: the network's configuration; the default is the compact ``unet_lite`` model.
        pretrained_backbone: a local torchvision checkpoint to start the encoder (and, for a
            DeepLabv3 checkpoint, the decoder) from: e.g. ``resnet101-63fe2227.pth`` (ImageNet) or
            ``deeplabv3_resnet101_coco-586e9e4e.pth`` (COCO, the paper's). Nothing is downloaded.
    """
    model = FakeLocatorNet(config or ModelConfig())
    if pretrained_backbone is not None:
        load_pretrained_backbone(model, pretrained_backbone)
    return model


def load_pretrained_backbone(model: FakeLocatorNet, path: str | Path) -> int:
    """Copy matching tensors from a torchvision checkpoint into the encoder/decoder; returns how many."""
    path = Path(path)
    if not path.is_file():
        raise FakeLocatorError(f"pretrained backbone weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise FakeLocatorError(f"pretrained backbone weights {path}: cannot be read ({e})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    mobilenet = model.config.backbone == "deeplabv3_mobilenet_v3_large"
    loaded = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            target = "encoder." + key[len("backbone."):]
        elif key.startswith("classifier."):
            target = "decoder." + key[len("classifier."):]
        elif mobilenet and key.startswith("features."):
            target = "encoder." + key[len("features."):]
        else:
            target = "encoder." + key
        if target in own and own[target].shape == value.shape:
            loaded[target] = value
    if not loaded:
        raise FakeLocatorError(
            f"pretrained backbone weights {path}: no tensor matches the {model.config.backbone} encoder"
        )
    model.load_state_dict(loaded, strict=False)
    return len(loaded)
