"""ORCHESTRATION TESTS OF THE GPU PIPELINE WITH A FAKE DEVICE (tests/helpers/fake_cuda.py). No GPU, no CUDA.

Host memory stands in for device memory, the native library's CPU kernels (one test: the CUDA
kernels compiled for the CPU by native/src/emulate.cpp) stand in for the device kernels, and the
fake streams run their queued work only when the host synchronizes, honouring cross-stream waits.
Backends: a TensorRTBackend loading an engine of the fake TensorRT (tests/helpers/fake_tensorrt.py:
``tiny_net`` on the fake stream), and
the real ONNX Runtime (CPU) with I/O binding to the fake device's host addresses.

What they check: the GPU path gives the host path's maps, scores and features (bit for bit,
since both run the same arithmetic), for batches of differently sized images, crops, mixed colour
orders, padded static batches and fp16 inputs; exactly one upload and one download of pixels per
batch, on their own streams; no allocation after warm-up; two batches in flight; clean recovery
after a failed batch; and the fallbacks to the host path, each with its log line. What runs on a
real GPU is tests/runtime/test_device_pipeline_gpu.py's (needs_cuda).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import Locator, device_pipeline
from fakelocator.runtime.backends import onnxruntime as ort_backend
from fakelocator.runtime.backends.base import Backend, DeviceIOUnavailable, ModelInfo
from fakelocator.runtime.backends.tensorrt import TensorRTBackend
from helpers import fake_cuda, fake_tensorrt, native_build

REPO = Path(__file__).resolve().parents[2]

CONTRACT = Preprocessing(height=24, width=20)
SIZES = [(30, 40), (7, 90), (64, 64), (1, 1), (100, 33), (50, 51), (3, 200)]


@pytest.fixture(scope="module")
def native_path() -> Path:
    from fakelocator.runtime import native

    override = os.environ.get(native.LIBRARY_ENV, "").strip()
    if override and override.lower() != "off":
        return Path(override)
    return native_build.build_library(REPO / "build")


@pytest.fixture
def device(monkeypatch, native_path):
    """A fresh fake device installed as fakelocator.runtime.cuda, with the native library on it."""
    dev = fake_cuda.install(monkeypatch)
    dev.lib = fake_cuda.device_library(native_path, dev)
    monkeypatch.setattr(device_pipeline, "_native_library", lambda: dev.lib)
    return dev


@pytest.fixture
def tensorrt_backend(device, tmp_path, monkeypatch):
    """``tensorrt_backend(batch=(min, max), input_dtype=...)``: a TensorRTBackend on a fake engine running
    ``tiny_net``, with the fake TensorRT (``device.trt``, its calls in ``device.trt_state``) on the device."""
    device.trt, device.trt_state = fake_tensorrt.install(monkeypatch, device=device)
    made = []

    def make(batch=(1, 4), input_dtype=np.float32, contract=CONTRACT):
        path = fake_tensorrt.write_engine(tmp_path / f"tiny-{len(made)}.engine", device.trt, device, contract,
                                          batch=batch, input_dtype=input_dtype)
        made.append(TensorRTBackend(path))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def images(rng, sizes=SIZES):
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]


def assert_same_results(got, want, *, outputs=False):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.error == b.error and a.source == b.source
        if b.error is not None:
            continue
        assert a.map.dtype == np.float32 and a.map.shape == b.map.shape == (b.height, b.width)
        np.testing.assert_array_equal(a.map, b.map)
        assert a.score == b.score and a.label == b.label and a.bbox == b.bbox
        if outputs:
            np.testing.assert_array_equal(a.outputs["map"], b.outputs["map"])
            np.testing.assert_array_equal(a.outputs["features"], b.outputs["features"])


@pytest.fixture
def engine(tensorrt_backend):
    return tensorrt_backend(batch=(1, 4))


def locators(backend, **options):
    """(device-path locator, host-path locator) on the same backend."""
    on_device = Locator(backend, min_side=1, pipeline="device", preprocessor="native", workers=2, **options)
    on_host = Locator(backend, min_side=1, pipeline="host", preprocessor="native", workers=2, **options)
    assert (on_device.pipeline, on_host.pipeline) == ("device", "host")
    return on_device, on_host


# ---- same results as the host path ----------------------------------------------------------------


def test_tensorrt_device_path_equals_the_host_path(device, engine, rng):
    on_device, on_host = locators(engine, batch_size=4)
    frames = images(rng)  # 7 images: a full batch of 4, then 3
    got = on_device.locate(frames, keep_outputs=True)
    assert_same_results(got, on_host.locate(frames, keep_outputs=True), outputs=True)
    assert set(got[0].timings) >= {"decode", "pack", "h2d", "preprocess", "infer", "postprocess", "d2h", "finish"}
    assert all(v >= 0 for r in got for v in r.timings.values())
    assert [shape[0] for shape, _ in engine.context.executions[:2]] == [4, 3]


def test_onnxruntime_io_binding_path_equals_the_host_path(device, red_model, rng, monkeypatch):
    backend = ort_backend.load(str(red_model), device="cpu", threads=1)
    on_host = Locator(backend, min_side=1, pipeline="host", preprocessor="native", batch_size=3, workers=2)
    # The session runs on the CPU, so its I/O binding binds the fake device's host addresses as "cpu".
    monkeypatch.setattr(backend, "device", "cuda:0")
    monkeypatch.setattr(backend, "device_io", lambda n: ort_backend.OnnxRuntimeDeviceIO(backend, n, device_type="cpu"))
    on_device = Locator(backend, min_side=1, pipeline="device", batch_size=3, workers=2)
    frames = images(rng)
    frames[2][10:40, 5:30] = (0, 0, 255)  # red: the red model's map is high there
    got = on_device.locate(frames, keep_outputs=True)
    assert_same_results(got, on_host.locate(frames, keep_outputs=True), outputs=True)
    assert got[2].label == "fake" and got[2].bbox is not None
    on_device.close()


def test_a_static_batch_model_gets_its_last_batch_padded(device, tmp_path, build_red_model, rng, monkeypatch):
    backend = ort_backend.load(str(build_red_model(tmp_path / "static.onnx", batch=4)), device="cpu", threads=1)
    on_host = Locator(backend, min_side=1, pipeline="host", batch_size=4, preprocessor="native")
    monkeypatch.setattr(backend, "device", "cuda:0")
    monkeypatch.setattr(backend, "device_io", lambda n: ort_backend.OnnxRuntimeDeviceIO(backend, n, device_type="cpu"))
    on_device = Locator(backend, min_side=1, pipeline="device", batch_size=4)
    frames = images(rng, SIZES[:5])
    assert_same_results(on_device.locate(frames), on_host.locate(frames))


def test_fp16_engine_input_is_written_as_float16(device, tensorrt_backend, rng):
    backend = tensorrt_backend(batch=(1, 4), input_dtype=np.float16)
    on_device, on_host = locators(backend, batch_size=4)
    frames = images(rng, SIZES[:3])
    got = on_device.locate(frames)
    binding = (ctypes.c_uint8 * backend.device_buffers["image"].nbytes).from_address(backend.device_buffers["image"].ptr)
    written = np.frombuffer(binding, np.float16, count=3 * 3 * 24 * 20).reshape(3, 3, 24, 20)
    expected = device.lib.preprocess(frames, "BGR", CONTRACT, np.empty((3, 3, 24, 20), np.float16))
    np.testing.assert_array_equal(written, expected)
    # The host path stages its float32 batch into the fp16 binding: the network gets the same input.
    assert_same_results(got, on_host.locate(frames))
    backend.close()


def test_a_static_batch_engine_runs_padded_batches(device, engine, tensorrt_backend, rng):
    static = tensorrt_backend(batch=(4, 4))
    frames = images(rng, SIZES[:6])  # 4, then 2 padded to 4
    got = Locator(static, min_side=1, pipeline="device", batch_size=4).locate(frames)
    assert [shape[0] for shape, _ in static.context.executions] == [4, 4]
    assert_same_results(got, Locator(engine, min_side=1, pipeline="host", batch_size=4, preprocessor="native").locate(frames))
    static.close()


def test_crops_from_a_region_provider_and_mixed_colour_orders(device, engine, rng, tmp_path):
    def halves(image, color_order, index):
        h, w = image.shape[:2]
        return None if index == 0 else [(0, 0, max(1, w // 2), h), (w // 3, h // 4, w, h)]

    on_device, on_host = locators(engine, batch_size=4, regions=halves)
    frames = images(rng, SIZES[:4])
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), frames[0])
    inputs = [str(path), *[np.ascontiguousarray(f[:, :, ::-1]) for f in frames[1:]]]  # a BGR file, RGB arrays
    got = on_device.locate(inputs, color_order="RGB")
    assert_same_results(got, on_host.locate(inputs, color_order="RGB"))
    assert got[1].regions is not None and len(got[1].regions) == 2


def test_bad_inputs_are_recorded_and_videos_run_on_the_device_path(device, engine, rng, video):
    on_device, on_host = locators(engine, batch_size=4)
    inputs = [images(rng, [(20, 30)])[0], b"not an image", images(rng, [(40, 10)])[0]]
    got = on_device.locate(inputs, on_error="record")
    assert_same_results(got, on_host.locate(inputs, on_error="record"))
    assert got[1].error is not None
    frames_device = list(on_device.locate_video(video, every=3))
    frames_host = list(on_host.locate_video(video, every=3))
    assert_same_results(frames_device, frames_host)


# ---- copies, streams, buffers ---------------------------------------------------------------------


def test_one_upload_and_one_download_of_pixels_per_batch_on_their_own_streams(device, engine, rng):
    on_device, _ = locators(engine, batch_size=4)
    device.copies.clear()
    frames = images(rng)
    on_device.locate(frames)
    pipeline = on_device._device_path.pipelines[0]
    batches = [frames[:4], frames[4:]]
    uploads = [c for c in device.copies if c.kind == "h2d"]
    downloads = [c for c in device.copies if c.kind == "d2h"]
    assert [c.nbytes for c in uploads] == [device_pipeline._layout([f.shape[:2] for f in b], 3)[1] for b in batches]
    assert all(c.stream == pipeline.upload.handle for c in uploads)
    big = [c for c in downloads if c.stream == pipeline.download.handle]
    assert [c.nbytes for c in big] == [device_pipeline._layout([f.shape[:2] for f in b], 4)[1] for b in batches]
    for c, b in zip(big, batches):
        assert c.nbytes >= sum(4 * f.shape[0] * f.shape[1] for f in b)
    small = [c for c in downloads if c.stream != pipeline.download.handle]
    assert all(c.stream == engine.stream.handle for c in small)  # scores, features: in order with the engine
    assert sum(c.nbytes for c in small) == sum(len(b) * 4 * (1 + 3) for b in batches)
    assert not [c for c in device.copies if c.kind == "d2d" or c.stream == 0]
    assert {stream for _, stream in device.kernels} == {engine.stream.handle}


def test_buffers_are_allocated_in_warm_up_and_reused_after(device, engine, rng):
    on_device, _ = locators(engine, batch_size=4)
    on_device.locate(images(rng, [(100, 100)] * 8))  # warm-up: both slots see full batches of the largest size
    path = on_device._device_path
    warm, allocated = list(path.pipelines[0].allocations), len(device.allocations)
    for sizes in ([(100, 100)] * 5, SIZES[:4], [(64, 64)] * 8, [(99, 101), (1, 1)]):
        on_device.locate(images(rng, sizes))
    assert len(path.pipelines) == 1 and path.pipelines[0].allocations == warm
    assert len(device.allocations) == allocated
    on_device.locate(images(rng, [(300, 200)]))  # larger than ever: that slot's buffers grow once
    grown = path.pipelines[0].allocations[len(warm):]
    assert sorted(name for name, _ in grown) == ["frames", "maps", "maps_host", "staging"]


def test_two_batches_are_in_flight(device, engine, rng, monkeypatch):
    on_device, on_host = locators(engine, batch_size=2)
    seen = []
    submit = device_pipeline.DevicePipeline.submit

    def spy(self, *args, **kwargs):
        seen.append(self.in_flight)
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(device_pipeline.DevicePipeline, "submit", spy)
    frames = images(rng)
    assert_same_results(on_device.locate(frames), on_host.locate(frames))
    assert seen == [0, 1, 1, 1]  # each batch is submitted while the one before is still on the device


def test_a_failed_batch_raises_and_the_next_call_starts_clean(device, engine, rng):
    on_device, on_host = locators(engine, batch_size=2)
    device.trt_state.execute_ok = False
    with pytest.raises(FakeLocatorError, match="TensorRT inference failed for a device batch"):
        on_device.locate(images(rng))
    device.trt_state.execute_ok = True
    assert all(p.in_flight == 0 for p in on_device._device_path.pipelines)
    frames = images(rng)
    assert_same_results(on_device.locate(frames), on_host.locate(frames))


def test_stopping_early_leaves_nothing_in_flight(device, engine, rng):
    on_device, _ = locators(engine, batch_size=2)
    results = on_device.locate_iter(images(rng))
    next(results)
    results.close()
    path = on_device._device_path
    assert [p.in_flight for p in path.pipelines] == [0] and path._idle == path.pipelines


def test_closing_the_locator_frees_the_pipelines(device, red_model, rng, monkeypatch):
    backend = ort_backend.load(str(red_model), device="cpu", threads=1)
    monkeypatch.setattr(backend, "device", "cuda:0")
    monkeypatch.setattr(backend, "device_io", lambda n: ort_backend.OnnxRuntimeDeviceIO(backend, n, device_type="cpu"))
    with Locator(backend, min_side=1, pipeline="device", batch_size=2) as locator:
        locator.locate(images(rng, SIZES[:3]))
        assert device._device and device._pinned
    assert not device._device and not device._pinned  # the DeviceIO's bindings and the slots' buffers


# ---- choosing the pipeline ----------------------------------------------------------------------------


def test_auto_takes_the_device_path_when_everything_is_there(device, engine):
    assert Locator(engine, min_side=1, batch_size=4).pipeline == "device"


def test_auto_on_a_cpu_backend_is_the_host_path(locator):
    assert locator.pipeline == "host"


def fallback(backend, caplog, level=logging.INFO) -> str:
    with caplog.at_level(logging.DEBUG, logger="fakelocator"):
        locator = Locator(backend, min_side=1, batch_size=4)
    assert locator.pipeline == "host"
    lines = [r for r in caplog.records if "GPU pipeline" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == level, [r.getMessage() for r in lines]
    with pytest.raises(FakeLocatorError, match="the GPU pipeline is not available"):
        Locator(backend, min_side=1, batch_size=4, pipeline="device")
    return lines[0].getMessage()


def test_fallback_when_the_native_library_has_no_cuda(device, engine, caplog, monkeypatch):
    monkeypatch.setattr(device.lib, "has_cuda", False)
    assert "was built without CUDA" in fallback(engine, caplog)


def test_fallback_when_the_native_library_is_missing(device, engine, caplog, monkeypatch):
    def missing():
        raise DeviceIOUnavailable("the native pre/post-processing library is unavailable: no build/libfakelocator_native.so")

    monkeypatch.setattr(device_pipeline, "_native_library", missing)
    assert "pre/post-processing runs on the host" in fallback(engine, caplog)


def test_fallback_when_no_gpu_is_visible(device, engine, caplog):
    device.count = 0
    assert "sees no CUDA device" in fallback(engine, caplog)


def test_fallback_for_a_backend_without_device_io(device, caplog):
    class HostOnly(Backend):
        name, device, max_batch = "torch", "cuda:0", None
        info = ModelInfo(path="host-only.pt", format="checkpoint", preprocessing=CONTRACT)

        def infer(self, batch):
            raise AssertionError("not called")

    assert "the torch backend takes host arrays only" in fallback(HostOnly(), caplog)


def test_fallback_for_an_engine_with_fp16_outputs(device, tensorrt_backend, caplog):
    backend = tensorrt_backend(batch=(1, 4))
    backend.dtypes["map"] = np.dtype(np.float16)
    assert "output 'map' is float16" in fallback(backend, caplog)


def test_a_gpu_path_that_fails_to_start_falls_back_loudly_under_auto(device, engine, caplog, monkeypatch):
    def out_of_memory(n):
        raise FakeLocatorError("cudaMalloc(1000 bytes) failed: cudaErrorMemoryAllocation (out of memory)")

    monkeypatch.setattr(engine, "device_io", out_of_memory)
    with caplog.at_level(logging.INFO, logger="fakelocator"):
        assert Locator(engine, min_side=1, batch_size=4).pipeline == "host"
    assert [r.levelno for r in caplog.records if "GPU pipeline failed to start" in r.getMessage()] == [logging.WARNING]
    with pytest.raises(FakeLocatorError, match="out of memory"):
        Locator(engine, min_side=1, batch_size=4, pipeline="device")


def test_onnxruntime_on_the_cpu_offers_no_device_io(locator):
    with pytest.raises(DeviceIOUnavailable, match="runs on the CPU"):
        locator.backend.device_io(4)


def test_an_unknown_pipeline_is_refused(engine):
    with pytest.raises(FakeLocatorError, match="pipeline must be one of"):
        Locator(engine, min_side=1, pipeline="gpu")


# ---- the CUDA kernels themselves (compiled for the CPU) instead of the CPU implementation -----------


@pytest.mark.slow  # a second build of the native library (about 10 s on 2 cores)
@pytest.mark.skipif(sys.platform != "linux", reason="the kernel emulator uses ucontext (Linux)")
def test_device_path_with_the_emulated_cuda_kernels(device, engine, rng, tmp_path_factory, monkeypatch):
    emulated = REPO / "build" / "libfakelocator_native_emulated.so"
    if not emulated.is_file():
        build = tmp_path_factory.mktemp("emulated")
        native_build.build_library(build, "-DFAKELOCATOR_CUDA=OFF", "-DFAKELOCATOR_EMULATED_CUDA=ON")
        emulated = build / "libfakelocator_native_emulated.so"
    lib = fake_cuda.device_library(emulated, device, emulated=True)
    monkeypatch.setattr(device_pipeline, "_native_library", lambda: lib)
    on_device, on_host = locators(engine, batch_size=4)
    frames = images(rng, SIZES[:5])
    assert_same_results(on_device.locate(frames), on_host.locate(frames))


# ---- the GPU check and benchmark script, on the fake device ------------------------------------------


def test_the_device_pipeline_benchmark_runs_on_the_fake_device(device, tmp_path, capsys):
    """benchmarks/device_pipeline.py (what a GPU session runs): its stand-in network, parity check
    and stage table, end to end with the fake device. Its numbers here mean nothing."""
    from fakelocator.benchmarks import device_pipeline as bench

    out = tmp_path / "bench.json"
    code = bench.main(["--batch", "3", "--frames", "5", "--height", "40", "--width", "30", "--rounds", "1", "--output", str(out)])
    assert code == 0, capsys.readouterr()
    record = json.loads(out.read_text())
    assert record["check"]["identical"] is True and record["device"] == "NVIDIA Fake GPU"
    assert set(record["device_path"]["stage_ms_per_batch"]) >= {"pack", "h2d", "preprocess", "infer", "postprocess", "d2h"}
    assert "d2d" in {c.kind for c in device.copies}  # the stand-in network's "inference"


def test_trt_locate_pipeline_option(device, tmp_path, red_model, rng, monkeypatch, capsys):
    from fakelocator.runtime import locator as locator_module
    from fakelocator.runtime.cli import main

    monkeypatch.chdir(tmp_path)
    sizes = [s for s in SIZES if min(s) >= 16]  # trt-locate analyses sides of 16 pixels and more (MIN_SIDE)
    for k, image in enumerate(images(rng, sizes)):
        cv2.imwrite(f"{k}.png", image)
    args = [*(f"{k}.png" for k in range(len(sizes))), "--model", str(red_model), "--workers", "2", "--threads", "1", "--batch", "2"]
    assert main([*args, "--out", "cpu", "--pipeline", "device"]) == 2
    assert "the GPU pipeline is not available: the onnxruntime backend runs on cpu" in capsys.readouterr().err

    load_backend = locator_module.load_backend

    def on_fake_gpu(*a, **kw):  # the CPU session, its I/O bound to the fake device's host memory
        backend = load_backend(*a, **kw)
        backend.device = "cuda:0"
        backend.device_io = lambda n: ort_backend.OnnxRuntimeDeviceIO(backend, n, device_type="cpu")
        return backend

    monkeypatch.setattr(locator_module, "load_backend", on_fake_gpu)
    assert main([*args, "--out", "host", "--pipeline", "host"]) == 0
    assert "host pre/post-processing" in capsys.readouterr().err
    assert main([*args, "--out", "device"]) == 0  # auto
    assert "device pre/post-processing" in capsys.readouterr().err
    for k in range(len(sizes)):
        assert (tmp_path / "device" / "maps" / f"{k}.png").read_bytes() == (tmp_path / "host" / "maps" / f"{k}.png").read_bytes()


# ---- native analysis: tiles and stitching on the device ----------------------------------------------

NATIVE = Preprocessing(height=24, width=20, analysis="native", tile_overlap=4)


def native_reference(frames, orders, contract=NATIVE):
    """What the device pipeline must give for a native contract, computed on the host: the numpy
    tiles, the stand-in network per tile, the numpy stitching (fakelocator.tiling)."""
    from fakelocator.runtime.preprocess import NumpyPreprocessor
    from fakelocator.tiling import TileGrid

    pre = NumpyPreprocessor()
    maps, outputs = [], []
    for frame, order in zip(frames, orders):
        grid = TileGrid.of(frame.shape[0], frame.shape[1], *contract.size, contract.tile_overlap)
        x = pre.tiles(frame, grid, order, contract, np.empty((len(grid), 3, *contract.size), np.float32))
        out = fake_tensorrt.tiny_net(x)
        maps.append(pre.stitch(out["map"][:, 0], grid, contract.tile_window))
        outputs.append(out)
    return maps, outputs


def run_native(pipeline, batches):
    done = []
    for frames, orders in batches:
        if pipeline.in_flight >= pipeline.depth:
            done.append(pipeline.collect())
        pipeline.submit(frames, orders, network_maps=True)
    while pipeline.in_flight:
        done.append(pipeline.collect())
    return done


@pytest.mark.parametrize("input_dtype", [np.float32, np.float16])
def test_native_analysis_on_the_device_is_the_host_rule(device, tensorrt_backend, rng, input_dtype):
    # tiles of 24 x 20 with overlap 4: images smaller than a tile (padded), larger (several tiles)
    backend = tensorrt_backend(batch=(1, 16), input_dtype=input_dtype, contract=NATIVE)
    pipeline = device_pipeline.DevicePipeline(backend.device_io(16), device.lib, NATIVE)
    try:
        sizes = [(30, 40), (7, 9), (24, 20), (1, 1), (50, 33)]
        frames = [rng.integers(0, 256, (h, w + 5, 3), dtype=np.uint8)[:, 2:w + 2] for h, w in sizes]  # crops of wider rows
        orders = ["BGR", "BGR", "RGB", "BGR", "RGB"]
        counts = pipeline.tile_counts(frames)
        assert counts == [6, 1, 1, 1, 6]
        batches = [(frames[:3], orders[:3]), (frames[3:], orders[3:]), (frames[:2], orders[:2])]  # 8, 7 and 7 rows
        done = run_native(pipeline, batches)
        assert [kind for kind, _ in device.kernels].count("tiles") == 2 + 2 + 1  # one call per run of a colour order
        assert [kind for kind, _ in device.kernels].count("stitch") == 3
        for batch, (frames_b, orders_b) in zip(done, batches):
            want_maps, want_out = native_reference(frames_b, orders_b)
            assert batch.tiles == pipeline.tile_counts(frames_b)
            rows = np.cumsum([0] + batch.tiles)
            for k, (got, want) in enumerate(zip(batch.maps, want_maps)):
                assert got.shape == frames_b[k].shape[:2]
                if input_dtype == np.float32:  # the same arithmetic as the host
                    np.testing.assert_array_equal(got, want)
                    np.testing.assert_array_equal(batch.scores[rows[k]:rows[k + 1]], want_out[k]["score"][:, 0])
                    np.testing.assert_array_equal(batch.features[rows[k]:rows[k + 1]], want_out[k]["features"])
                    np.testing.assert_array_equal(batch.network_maps[rows[k]:rows[k + 1]], want_out[k]["map"][:, 0])
                else:  # the network saw fp16 tiles
                    np.testing.assert_allclose(got, want, atol=2e-3)
    finally:
        pipeline.close()
        backend.close()


def test_native_batches_that_do_not_fit_the_bindings_are_refused(device, tensorrt_backend, rng):
    backend = tensorrt_backend(batch=(1, 4), contract=NATIVE)
    pipeline = device_pipeline.DevicePipeline(backend.device_io(4), device.lib, NATIVE)
    try:
        with pytest.raises(FakeLocatorError, match="6"):
            pipeline.submit([rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)], ["BGR"])  # 6 tiles > 4 rows
        assert pipeline.in_flight == 0
        pipeline.submit([rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)], ["BGR"])  # 2 tiles
        assert pipeline.collect().tiles == [2]
    finally:
        pipeline.close()
        backend.close()


@pytest.mark.slow  # the emulation build (shared with the test above it)
@pytest.mark.skipif(sys.platform != "linux", reason="the kernel emulator uses ucontext (Linux)")
def test_native_analysis_with_the_emulated_cuda_kernels(device, tensorrt_backend, rng, tmp_path_factory):
    emulated = REPO / "build" / "libfakelocator_native_emulated.so"
    if not emulated.is_file():
        build = tmp_path_factory.mktemp("emulated-native")
        native_build.build_library(build, "-DFAKELOCATOR_CUDA=OFF", "-DFAKELOCATOR_EMULATED_CUDA=ON")
        emulated = build / "libfakelocator_native_emulated.so"
    lib = fake_cuda.device_library(emulated, device, emulated=True)
    backend = tensorrt_backend(batch=(1, 16), contract=NATIVE)
    pipeline = device_pipeline.DevicePipeline(backend.device_io(16), lib, NATIVE)
    try:
        frames = images(rng, [(30, 40), (1, 1), (50, 33)])
        (batch,) = run_native(pipeline, [(frames, ["BGR", "RGB", "BGR"])])
        for got, want in zip(batch.maps, native_reference(frames, ["BGR", "RGB", "BGR"])[0]):
            np.testing.assert_array_equal(got, want)
    finally:
        pipeline.close()
        backend.close()



# ---- the run specification on the device: both analyses, any batch size -------------------------------

# A fit model (CONTRACT) and a native one (NATIVE), each run in both analyses; the overlap given for
# native analysis of the fit model, whose default (32) does not fit its 24 x 20 tiles.
ANALYSES = [("fit", "fit", {}), ("fit", "native", {"tile_overlap": 4}), ("native", "native", {}), ("native", "fit", {})]
#: The device path's maps and scores against the host path's: the fake device runs the native
#: library's CPU kernels, the arithmetic of the CUDA kernels (native/src/common.h), so they agree
#: to float32 rounding; 1e-6 is the contract's tolerance of the native kernels (docs/runtime.md).
DEVICE_ATOL = 1e-6


@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
@pytest.mark.parametrize("made_for, analysis, options", ANALYSES, ids=[f"{m}-model-{a}" for m, a, _ in ANALYSES])
def test_the_device_path_runs_the_spec_like_the_host(device, tensorrt_backend, rng, made_for, analysis, options, batch_size):
    backend = tensorrt_backend(batch=(1, 64), contract=NATIVE if made_for == "native" else CONTRACT)
    on_device, on_host = locators(backend, batch_size=batch_size, analysis=analysis, **options)
    assert on_device.spec.contract == on_host.spec.contract and on_device.spec.analysis == analysis
    assert on_device.spec.batch_size == batch_size  # the bindings take 64
    frames = images(rng)  # 7 images of 1 to 10 tiles: in native, crops' tiles span batches of 1, 2 and 7
    got = on_device.locate(frames, keep_outputs=True)
    device_rows = [call[0][0] for call in backend.context.executions]  # rows per inference on the device path
    want = on_host.locate(frames, keep_outputs=True)
    for a, b in zip(got, want):
        assert a.error is b.error is None and a.tiles == b.tiles and a.map.shape == b.map.shape
        np.testing.assert_allclose(a.map, b.map, rtol=0, atol=DEVICE_ATOL)
        assert a.score == pytest.approx(b.score, abs=DEVICE_ATOL) and a.label == b.label
        for name, kept in b.outputs.items():  # network maps, tile scores, features
            np.testing.assert_allclose(a.outputs[name], kept, rtol=0, atol=DEVICE_ATOL)
    if analysis == "native":
        assert {"tiles", "stitch"} <= {kind for kind, _ in device.kernels}
    assert sum(device_rows) == sum(r.tiles for r in got) and max(device_rows) <= batch_size
    on_device.close()
    on_host.close()


def test_a_native_crop_larger_than_the_bindings_spans_batches_on_the_device(device, tensorrt_backend, rng):
    backend = tensorrt_backend(batch=(1, 4), contract=NATIVE)
    on_device, on_host = locators(backend, batch_size=64)  # clamped to the bindings' 4 rows
    assert on_device.spec.batch_size == 4 and on_device.spec.analysis == "native"
    frame = rng.integers(0, 256, (100, 90, 3), dtype=np.uint8)  # 6 x 5 tiles of 24 x 20: 8 batches of up to 4 rows
    got, want = on_device.locate(frame), on_host.locate(frame)
    assert got.tiles == 30 and max(call[0][0] for call in backend.context.executions) == 4
    np.testing.assert_allclose(got.map, want.map, rtol=0, atol=DEVICE_ATOL)
    assert got.score == pytest.approx(want.score, abs=DEVICE_ATOL)
    assert ("d2d" in {c.kind for c in device.copies}) and device.idle()
