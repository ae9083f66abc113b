"""The per-stage timer: every stage recorded, warm-up excluded, copies n/a on the CPU, and the GPU
splits of ``Backend.infer`` computing what the backends compute."""

import cv2
import numpy as np
import pytest

from fakelocator.benchmarks import stages
from fakelocator.benchmarks.inputs import make_pool
from fakelocator.benchmarks.stages import STAGES, HostEvent, StageRunner, infer_stages, stage_bytes, summarize_stages
from fakelocator.contract import Preprocessing
from fakelocator.runtime.backends.base import Backend, ModelInfo
from helpers import fake_cuda, fake_tensorrt

CONTRACT = Preprocessing(height=32, width=32)


class FakeBackend(Backend):
    """Costs 100 fake ms per batch for its first two calls (warm-up), 5 ms after."""

    name, device = "fake", "cpu"

    def __init__(self, clock):
        self.clock, self.calls = clock, 0
        self.info = ModelInfo(path="fake", format="onnx", preprocessing=CONTRACT)

    def infer(self, batch):
        self.calls += 1
        self.clock.advance(100.0 if self.calls <= 2 else 5.0)
        n = len(batch)
        return {"map": np.full((n, 1, 32, 32), 0.75, np.float32), "score": np.zeros((n, 1), np.float32)}


class FakePreprocessor:
    name = "fake"

    def __init__(self, clock):
        self.clock = clock

    def preprocess(self, images, color_order, contract, out):
        self.clock.advance(2.0 * len(images))
        out[...] = 0.0
        return out

    def upsample(self, map_hw, height, width, out=None):
        self.clock.advance(1.0)
        return np.full((height, width), float(map_hw.mean()), np.float32)


def test_every_stage_is_recorded_per_batch_and_warmup_is_excluded(clock, tmp_path, monkeypatch):
    real_load = stages.load_image

    def load(*args, **kwargs):  # the real decoder, plus 3 fake ms per image
        clock.advance(3.0)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(stages, "load_image", load)
    pool = make_pool("crop256", size=3)
    runner = StageRunner(FakeBackend(clock), FakePreprocessor(clock), write_dir=tmp_path / "w", clock=clock)
    samples = runner.measure(pool, batch=4, iterations=5, warmup=2)

    assert set(samples) == {*STAGES, "infer_call"}
    assert all(len(v) == 5 for v in samples.values())
    assert samples["decode"] == pytest.approx([12.0] * 5)  # 4 images × 3 ms
    assert samples["preprocess"] == pytest.approx([8.0] * 5)
    assert samples["infer"] == pytest.approx([5.0] * 5)  # the two 100 ms warm-up calls are not there
    assert samples["upsample"] == pytest.approx([4.0] * 5)
    assert samples["h2d"] == [None] * 5 and samples["d2h"] == [None] * 5

    written = sorted((tmp_path / "w").glob("*.png"))
    assert len(written) == 4
    m = cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED)
    assert m.shape == (256, 256) and int(m[0, 0]) == 191  # floor(0.75 · 255 + 0.5)
    runner.close()
    assert not (tmp_path / "w").exists()

    summary = summarize_stages(samples, batch=4, device="cpu")
    assert summary["h2d"] == {"applicable": False, "reason": summary["h2d"]["reason"]} and "CPU" in summary["h2d"]["reason"]
    assert summary["infer"]["p50_ms"] == pytest.approx(5.0) and summary["infer"]["images"] == 4
    assert summary["infer"]["images_per_s"] == pytest.approx(800.0)


def test_cpu_inference_is_timed_as_one_call_without_copies(clock):
    out, split = infer_stages(FakeBackend(clock), np.zeros((2, 3, 32, 32), np.float32), clock=clock)
    assert split == {"h2d": None, "infer": pytest.approx(100.0), "d2h": None, "infer_call": pytest.approx(100.0)}
    assert out["map"].shape == (2, 1, 32, 32)


def test_stage_bytes_count_each_input_and_output_byte_once():
    b = stage_bytes(1080, 1920, Preprocessing())
    assert b["preprocess"] == 1080 * 1920 * 3 + 3 * 224 * 224 * 4
    assert b["upsample"] == 224 * 224 * 4 + 1080 * 1920 * 4


def test_the_onnxruntime_io_binding_split_computes_what_infer_computes(mean_model, clock):
    from fakelocator.runtime.backends import load_backend

    with load_backend(mean_model, "onnxruntime", device="cpu", threads=1) as backend:
        x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
        out, split = stages.onnxruntime_split(backend, x, device_type="cpu", clock=clock)
        expected = backend.infer(x)
    assert set(split) == {"h2d", "infer", "d2h"}
    for name in ("map", "score", "features"):
        np.testing.assert_array_equal(out[name], expected[name])


def test_the_torch_split_computes_what_infer_computes(tiny_files, clock):
    from fakelocator.runtime.backends import load_backend

    _, checkpoint = tiny_files
    with load_backend(checkpoint, "torch", device="cpu") as backend:
        x = np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype(np.float32)
        out, split = stages.torch_split(backend, x, event=lambda: HostEvent(clock))
        expected = backend.infer(x)
    assert set(split) == {"h2d", "infer", "d2h"}
    for name in ("map", "score", "features"):
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-6, atol=1e-7)


def test_the_tensorrt_split_drives_the_real_backend_like_infer_does(tmp_path, monkeypatch):
    """With the fake CUDA device and TensorRT (tests/helpers): same buffers, same stream, same outputs."""
    from fakelocator.runtime.backends.tensorrt import TensorRTBackend

    device = fake_cuda.install(monkeypatch)
    trt, state = fake_tensorrt.install(monkeypatch, device=device)
    engine = fake_tensorrt.write_engine(tmp_path / "model.engine", trt, device, CONTRACT, batch=(1, 8))
    with TensorRTBackend(engine) as backend:
        x = np.random.default_rng(2).normal(size=(3, 3, 32, 32)).astype(np.float32)
        device.copies.clear()
        out, split = stages.tensorrt_split(backend, x, event=device.module.Event)
        copies = list(device.copies)
        assert device.idle(), "the split returns after its stream has run everything it queued"
        expected = backend.infer(x)
        handle, outputs = backend.stream.handle, list(backend.outputs)
    assert set(split) == {"h2d", "infer", "d2h"} and all(v >= 0 for v in split.values())
    for name in expected:
        np.testing.assert_array_equal(out[name], expected[name])
    assert [c.kind for c in copies] == ["h2d"] + ["d2h"] * len(outputs)
    assert all(c.stream == handle for c in copies)
    assert ("execute_async_v3", handle) in state.calls


@pytest.mark.needs_cuda
def test_the_torch_split_on_a_gpu_uses_cuda_events_and_computes_what_infer_computes(tiny_files):
    from fakelocator.runtime.backends import load_backend

    _, checkpoint = tiny_files
    with load_backend(checkpoint, "torch", device="cuda:0", batch_size=4) as backend:  # fp16, channels-last, CUDA graph
        x = np.random.default_rng(3).normal(size=(4, 3, 64, 64)).astype(np.float32)
        out, split = infer_stages(backend, x)
        expected = backend.infer(x)
    assert all(split[k] > 0 for k in ("h2d", "infer", "d2h", "infer_call"))
    for name in ("map", "score"):
        np.testing.assert_allclose(out[name], expected[name], atol=1e-3)
