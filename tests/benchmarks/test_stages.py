"""The per-stage timer runs the public API (``Locator.locate``) and reports the runtime's own stage
timings: every stage recorded per batch, warm-up excluded, copies n/a on the host path, the device
path's CUDA-event stages on the fake device, and the maps written as trt-locate writes them."""

import cv2
import numpy as np
import pytest

from fakelocator.benchmarks.inputs import make_pool
from fakelocator.benchmarks.stages import NATIVE_STAGES, STAGES, StageRunner, stage_bytes, summarize_stages
from fakelocator.contract import Preprocessing
from fakelocator.runtime import Locator
from fakelocator.runtime.levels import map_levels


@pytest.mark.parametrize("analysis, stages", [("fit", STAGES), ("native", NATIVE_STAGES)])
def test_every_stage_is_the_runners_own_timing_per_batch(mean_model, tmp_path, analysis, stages):
    pool = make_pool("crop256", size=3)
    with Locator.load(mean_model, device="cpu", batch_size=4, workers=2, threads=1, analysis=analysis,
                      tile_overlap=8 if analysis == "native" else None) as locator:
        runner = StageRunner(locator, write_dir=tmp_path / "w")
        samples = runner.measure(pool, batch=4, iterations=3, warmup=1)
        want = locator.locate(pool.item(0))
    assert tuple(samples) == stages and all(len(v) == 3 for v in samples.values())
    assert samples["h2d"] == [None] * 3 and samples["d2h"] == [None] * 3  # inside the backend's call on the host path
    for stage in set(stages) - {"h2d", "d2h"}:
        assert all(v > 0 for v in samples[stage]), stage
    written = sorted((tmp_path / "w").glob("*.png"))
    assert len(written) == 4  # the last batch's maps: 8-bit levels, as trt-locate writes them
    np.testing.assert_array_equal(cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED), map_levels(want.map))
    runner.close()
    assert not (tmp_path / "w").exists()

    summary = summarize_stages(samples, batch=4, device="cpu")
    assert summary["h2d"]["applicable"] is False and "CPU" in summary["h2d"]["reason"]
    assert summary["infer"]["images"] == 4 and summary["infer"]["p50_ms"] > 0


def test_the_device_path_reports_its_copies(tmp_path, monkeypatch):
    """On the fake CUDA device (tests/helpers): the DeviceRunner's CUDA-event stages fill h2d and d2h."""
    from fakelocator.runtime import device_pipeline
    from fakelocator.runtime.backends.tensorrt import TensorRTBackend
    from helpers import fake_cuda, fake_tensorrt, native_build

    device = fake_cuda.install(monkeypatch)
    lib = fake_cuda.device_library(native_build.build_library(native_build.REPO / "build"), device)
    monkeypatch.setattr(device_pipeline, "_native_library", lambda: lib)
    trt, _ = fake_tensorrt.install(monkeypatch, device=device)
    engine = fake_tensorrt.write_engine(tmp_path / "m.engine", trt, device, Preprocessing(height=32, width=32), batch=(1, 4))
    with TensorRTBackend(engine) as backend:
        locator = Locator(backend, batch_size=4, workers=2, pipeline="device", preprocessor="native")
        runner = StageRunner(locator, write_dir=tmp_path / "w")
        samples = runner.measure(make_pool("crop256", size=2), batch=4, iterations=2, warmup=1)
        runner.close()
        locator.close()
    assert tuple(samples) == STAGES
    assert all(v is not None and v >= 0 for stage in ("h2d", "d2h") for v in samples[stage])


def test_stage_bytes_count_each_input_and_output_byte_once():
    b = stage_bytes(1080, 1920, Preprocessing())
    assert b["preprocess"] == 1080 * 1920 * 3 + 3 * 224 * 224 * 4
    assert b["upsample"] == 224 * 224 * 4 + 1080 * 1920 * 4
