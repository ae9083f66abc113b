"""Model configuration: a dataclass saved in every checkpoint and exported model.

Anything that rebuilds a network (training resume, export, the torch backend) does so from this
config alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError

BACKBONES = ("deeplabv3_resnet101", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "unet_lite", "unet_res")
UNET_RES_WIDTHS = (8, 16, 32, 128, 256)


@dataclass(frozen=True)
class ModelConfig:
    """What the network is.

    Args:
        backbone: encoder–decoder architecture, one of ``BACKBONES``. ``deeplabv3_resnet101`` is the
            paper's (Sec. V-A); ``unet_lite`` is the compact CPU/edge network of the default model.
        classifier: add the real/fake classification branch of Sec. V-A on the encoder features.
            Off ("no cl" in Table IV), the score is the map's strongest 8×8-cell mean.
        unet_width: channels of the first ``unet_lite`` stage; later stages double, up to 8×.
        highpass_stem: ``unet_lite`` only: feed the first convolution the image and its fixed
            high-pass residual (image − its 3×3 mean), see ``model.HighPassStem``.
        classifier_channels: output channels of the branch's four 3×3 convolutions.
        classifier_hidden: widths of the first two of its three fully connected layers.
        unet_res_widths: ``unet_res`` only: channels of its five stages (strides 1–16).
        preprocessing: the input contract (size, colour order, mean/std, resize rule, analysis).
    """

    backbone: str = "unet_lite"
    classifier: bool = True
    unet_width: int = 8
    highpass_stem: bool = False
    classifier_channels: tuple[int, int, int, int] = (64, 64, 32, 16)
    classifier_hidden: tuple[int, int] = (128, 32)
    unet_res_widths: tuple[int, int, int, int, int] = UNET_RES_WIDTHS
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise FakeLocatorError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        object.__setattr__(self, "classifier_channels", tuple(int(c) for c in self.classifier_channels))
        object.__setattr__(self, "classifier_hidden", tuple(int(c) for c in self.classifier_hidden))
        object.__setattr__(self, "unet_res_widths", tuple(int(c) for c in self.unet_res_widths))
        if len(self.unet_res_widths) != 5 or min(self.unet_res_widths) < 1:
            raise FakeLocatorError(f"unet_res_widths needs 5 positive values, got {self.unet_res_widths}")
        if len(self.classifier_channels) != 4 or len(self.classifier_hidden) != 2:
            raise FakeLocatorError("classifier_channels needs 4 values and classifier_hidden 2 (Sec. V-A)")
        if isinstance(self.preprocessing, dict):
            object.__setattr__(self, "preprocessing", Preprocessing.from_dict(self.preprocessing))
        if self.highpass_stem and self.backbone != "unet_lite":
            raise FakeLocatorError(f"highpass_stem is a unet_lite option, not one of {self.backbone}")
        h, w = self.preprocessing.size
        if h % 16 or w % 16:
            raise FakeLocatorError(f"input size must be a multiple of 16, got {h}x{w}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preprocessing"] = self.preprocessing.to_dict()
        d["classifier_channels"] = list(self.classifier_channels)
        d["classifier_hidden"] = list(self.classifier_hidden)
        d["unet_res_widths"] = list(self.unet_res_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise FakeLocatorError(f"model config has unknown fields {sorted(unknown)}")
        return cls(**d)
