"""The same inputs give the same maps on every available backend.

A tiny ``FakeLocatorNet`` (unet_lite, width 4, classifier, 32 × 32) is saved as ``.safetensors``
and exported to ONNX; the torch backend runs the checkpoint and onnxruntime the export, both through
the full pipeline (decode, preprocess, infer, upsample). Tolerances (float32 on the CPU): maps
within 1e-4 and scores within 1e-5, absolute. On a GPU, the torch backend runs in float16 and is
compared with onnxruntime at 2e-2 (the fp16 rounding of a random-weight network).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from fakelocator.runtime import Locator
from fakelocator.runtime.backends import available, formats

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory):
    from fakelocator.contract import Preprocessing
    from fakelocator.training.checkpoint import save_weights
    from fakelocator.training.config import ModelConfig
    from fakelocator.training.model import build_model

    torch.manual_seed(0)
    net = build_model(ModelConfig(unet_width=4, preprocessing=Preprocessing(height=32, width=32))).eval()
    folder = tmp_path_factory.mktemp("parity")
    weights = folder / "tiny.safetensors"
    save_weights(weights, net, provenance={"test": "parity"})

    class Outputs(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            out = self.net(image)
            return out["map"], out["score"], out["features"]

    path = folder / "tiny.onnx"
    axes = {name: {0: "batch"} for name in ("image", "map", "score", "features")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Outputs(net), (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=["map", "score", "features"], dynamic_axes=axes,
        )
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {
        "fakelocator.preprocessing": net.config.preprocessing.to_json(),
        "fakelocator.model_config": json.dumps(net.config.to_dict()),
        "fakelocator.provenance": json.dumps({"test": "parity"}),
        "fakelocator.version": "test",
        "fakelocator.precision": "fp32",
    })
    onnx.save(model, str(path))
    return {"onnx": path, "checkpoint": weights}


def images(rng):
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((32, 32, 3), (77, 101, 3), (5, 300, 3), (1, 1, 3))]


def run(model, backend, device, inputs):
    with Locator.load(model, backend=backend, device=device, batch_size=3, workers=2, min_side=1) as loc:
        return loc.locate(inputs), loc.info


def test_torch_and_onnxruntime_agree_on_cpu(tiny_net, rng):
    inputs = images(rng)
    reference, ref_info = run(tiny_net["onnx"], "onnxruntime", "cpu", inputs)
    results, info = run(tiny_net["checkpoint"], "torch", "cpu", inputs)
    assert info.preprocessing == ref_info.preprocessing
    assert (info.format, info.precision) == ("checkpoint", "fp32")
    for a, b in zip(reference, results):
        assert a.map.shape == b.map.shape
        assert np.abs(a.map - b.map).max() <= 1e-4
        assert abs(a.score - b.score) <= 1e-5


def test_auto_picks_torch_for_a_checkpoint(tiny_net):
    with Locator.load(tiny_net["checkpoint"], device="cpu") as loc:
        assert loc.backend.name == "torch"


@pytest.mark.needs_cuda
@pytest.mark.parametrize("backend", ["onnxruntime", "torch", "tensorrt"])
def test_gpu_backends_agree_with_the_cpu(tiny_net, rng, backend):
    """fp16 on the GPU (torch: CUDA graphs, channels-last) against fp32 onnxruntime on the CPU."""
    ok, reason = available(backend)
    if not ok:
        pytest.skip(reason)
    if backend == "tensorrt" and "onnx" not in formats("tensorrt"):
        pytest.skip("the tensorrt backend loads engines only; engine parity is tested in tests/export")
    model = tiny_net["checkpoint"] if backend == "torch" else tiny_net["onnx"]
    if backend == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            pytest.skip("onnxruntime without CUDA provider")
    inputs = images(rng)
    reference, _ = run(tiny_net["onnx"], "onnxruntime", "cpu", inputs)
    results, _ = run(model, backend, "cuda", inputs)
    for a, b in zip(reference, results):
        assert np.abs(a.map - b.map).max() <= 2e-2
        assert abs(a.score - b.score) <= 2e-2
