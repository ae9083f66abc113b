"""Each stage of the runtime, timed by the runtime itself through its public API.

One iteration takes one batch of encoded images through ``Locator.locate`` (the locator the
benchmark built: its backend, preprocessor, analysis and pipeline) and reads each result's own
stage timings (``LocateResult.timings``: what the pipeline's ``Runner`` measures per input as it
runs), then writes each map as trt-locate does (``outputs.encode_map`` of the 8-bit levels the
pipeline hands an 8-bit sink + ``outputs.write_atomic``). Per stage, the batch's ms is the sum
over its images:

| stage | host path (``Runner``) | device path (``DeviceRunner``, CUDA events) |
|---|---|---|
| decode | ``decode.load_image`` per image | the same |
| preprocess / tile | ``Preprocessor.preprocess`` / ``tiles`` of its batch, per image | pack + the preprocess/tiles kernel |
| h2d | not separable on a GPU backend (inside infer); no copy on the CPU | the upload |
| infer | the ``Backend.infer`` call, per image of its batch | the network between events |
| d2h | as h2d | the download |
| upsample / stitch | map to full resolution (or tiles stitched, their scores pooled) + bbox | postprocess/stitch kernel + the host's finish |
| write | ``encode_map`` + ``write_atomic`` (trt-locate's writer) | the same |

The stages overlap in the pipeline (decoding and finishing run in threads beside inference), so
their sum is the work per image, not its latency; ``end_to_end.py`` measures throughput.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from fakelocator.benchmarks.stats import summarize
from fakelocator.runtime.outputs import encode_map, write_atomic
from fakelocator.tiling import TileGrid

STAGES = ("decode", "preprocess", "h2d", "infer", "d2h", "upsample", "write")
PRE_POST = ("preprocess", "upsample")
NATIVE_STAGES = ("decode", "tile", "h2d", "infer", "d2h", "stitch", "write")
NATIVE_PRE_POST = ("tile", "stitch")
#: The device path's own timings (``device_pipeline.STAGES`` + ``finish``) that make up each stage.
DEVICE_PARTS = {"preprocess": ("pack", "preprocess"), "tile": ("pack", "preprocess"), "h2d": ("h2d",),
                "infer": ("infer",), "d2h": ("d2h",), "upsample": ("postprocess", "finish"),
                "stitch": ("postprocess", "finish")}


def stages_for(analysis: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(stages, pre/post stages) of a row of this analysis ("fit" or "native")."""
    return (NATIVE_STAGES, NATIVE_PRE_POST) if analysis == "native" else (STAGES, PRE_POST)


def _ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1000


class StageRunner:
    """Times every stage of one batch at a time through ``locator``; see the module docstring.

    Args:
        locator: the ``Locator`` under test (its batch size is the batch's).
        write_dir: where the write stage puts its PNG maps (emptied by ``close``).
    """

    def __init__(self, locator, *, write_dir: Path):
        self.locator = locator
        self.write_dir = Path(write_dir)
        self.write_dir.mkdir(parents=True, exist_ok=True)
        self.stages = stages_for(locator.contract.analysis)[0]

    def run_batch(self, encoded: list[bytes]) -> dict[str, float | None]:
        """One batch through every stage; {stage: ms for the whole batch, or None if not applicable}."""
        results = self.locator.locate(list(encoded), on_error="raise", map_dtype="uint8")
        device = self.locator.pipeline == "device"
        times: dict[str, float | None] = {}
        for stage in self.stages[:-1]:
            parts = DEVICE_PARTS.get(stage, (stage,)) if device else (stage,)
            if not device and stage in ("h2d", "d2h"):
                times[stage] = None  # the host path's copies are inside the backend's infer call
                continue
            times[stage] = sum(r.timings.get(part, 0.0) for r in results for part in parts)
        times["write"] = 0.0
        for k, result in enumerate(results):
            t0 = time.perf_counter()
            write_atomic(self.write_dir / f"{k:04d}.png", encode_map(result.map, 8))
            times["write"] += _ms(t0, time.perf_counter())
        return times

    def measure(self, pool, *, batch: int, iterations: int, warmup: int, ticker=None) -> dict[str, list[float | None]]:
        """``warmup`` untimed batches, then ``iterations`` timed ones; {stage: [ms per batch, ...]}.
        ``ticker`` (``end_to_end.Ticker``) hears each batch."""
        samples = []
        for i in range(warmup + iterations):
            times = self.run_batch(pool.items(i * batch, batch))
            if ticker is not None:
                ticker.add(batch)
            if i >= warmup:
                samples.append(times)
        return {stage: [s[stage] for s in samples] for stage in samples[0]}

    def close(self) -> None:
        shutil.rmtree(self.write_dir, ignore_errors=True)


def summarize_stages(samples: dict[str, list[float | None]], batch: int, device: str) -> dict[str, dict]:
    """{stage: Summary dict (ms per batch of ``batch`` images)}, or ``{"applicable": False, "reason"}``."""
    out = {}
    for stage, values in samples.items():
        if all(v is None for v in values):
            reason = ("no host/device copy on the CPU: the data stays in host memory" if device == "cpu"
                      else "not separable on the host path: inside the backend's infer call")
            out[stage] = {"applicable": False, "reason": reason}
        else:
            out[stage] = summarize([v for v in values if v is not None], images=batch).to_dict()
    return out


def stage_bytes(height: int, width: int, contract, input_itemsize: int = 4) -> dict[str, int]:
    """Nominal bytes moved per image by pre/post: every input byte read once, every output byte written once.

    preprocess: the uint8 (H, W, 3) image read + the (3, h, w) network input written;
    upsample: the (h, w) float32 map read + the (H, W) float32 full-resolution map written;
    native: tile: the image read + n × (3, h, w) tiles written; stitch: n (h, w) tile maps read +
    the (H, W) map written (n = the image's tiles).
    """
    h, w = contract.size
    if contract.native:
        n = len(TileGrid.of(height, width, h, w, contract.tile_overlap))
        return {
            "tile": height * width * 3 + n * 3 * h * w * input_itemsize,
            "stitch": n * h * w * 4 + height * width * 4,
        }
    return {
        "preprocess": height * width * 3 + 3 * h * w * input_itemsize,
        "upsample": h * w * 4 + height * width * 4,
    }
