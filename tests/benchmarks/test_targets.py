"""Targets apply only to the configuration they name, and are met, missed or not measured."""

import pytest

from fakelocator.benchmarks.targets import evaluate

DEFAULT = {"backbone": "unet_lite", "unet_width": 8, "preprocessing": {"height": 224, "width": 224}}
PAPER = {"backbone": "deeplabv3_resnet101", "preprocessing": {"height": 224, "width": 224}}


def row(device, kind, batch, ips, ratio=None, precision="fp32", backend="onnxruntime", limits=None, prepost=None):
    return {"device": device, "input": kind, "batch": batch, "precision": precision, "backend": backend,
            "end_to_end": {"images_per_s": ips}, "vs_baseline": ratio, "limits": limits or {}, "pre_post_fraction": prepost}


def by_name(results):
    return {t["target"]: t for t in evaluate(results)}


def test_cpu_targets_take_the_best_1080p_row_of_the_default_model():
    runs = [row("cpu", "1080p", 8, 41.0, 2.5), row("cpu", "1080p", 32, 55.0, 3.4), row("cpu", "direct224", 32, 90.0, 9.0)]
    t = by_name({"model": {"config": DEFAULT}, "runs": runs, "environment": {"usable_cores": 2}})
    assert t["CPU end to end, 1080p JPEG"]["measured"] == 55.0 and t["CPU end to end, 1080p JPEG"]["met"] is True
    assert t["CPU speed-up over the naive baseline, 1080p"]["measured"] == 3.4
    assert "batch 32" in t["CPU end to end, 1080p JPEG"]["detail"]
    runs[1]["end_to_end"]["images_per_s"] = 45.0
    assert by_name({"model": {"config": DEFAULT}, "runs": runs})["CPU end to end, 1080p JPEG"]["met"] is False


def test_cpu_targets_are_not_measured_for_another_model_or_without_1080p():
    other = {**DEFAULT, "unet_width": 4}
    t = by_name({"model": {"config": other}, "runs": [row("cpu", "1080p", 8, 500.0, 20.0)]})
    assert t["CPU end to end, 1080p JPEG"]["met"] is None and t["CPU end to end, 1080p JPEG"]["measured"] is None
    t = by_name({"model": {"config": DEFAULT}, "runs": [row("cpu", "direct224", 8, 500.0, 20.0)]})
    assert t["CPU end to end, 1080p JPEG"]["met"] is None


def test_gpu_targets_at_batch_64_of_the_paper_model():
    runs = [
        row("cuda:0", "1080p", 64, 900.0, 6.0, "fp16", "tensorrt",
            {"fraction_of_peak": 0.45, "achieved_tflops": 445.0, "peak_tflops": 989.4}, prepost=0.04),
        row("cuda:0", "1080p", 64, 700.0, 4.6, "fp32", "onnxruntime", {"fraction_of_peak": 0.5}, prepost=0.2),
        row("cuda:0", "1080p", 128, 2000.0, 13.0, "fp16", "tensorrt", {"fraction_of_peak": 0.9}),
    ]
    t = by_name({"model": {"config": PAPER}, "runs": runs})
    assert t["GPU speed-up over the naive baseline, 1080p"]["measured"] == 6.0 and t["GPU speed-up over the naive baseline, 1080p"]["met"]
    assert t["GPU inference, fraction of FP16 peak"]["measured"] == 0.45 and t["GPU inference, fraction of FP16 peak"]["met"]
    assert t["GPU pre/post share of end to end, 1080p"]["measured"] == 0.04 and t["GPU pre/post share of end to end, 1080p"]["met"]
    assert all(t[n]["met"] is None for n in t if n.startswith("CPU"))


@pytest.mark.parametrize("growth, met", [(3.0, True), (400.0, False)])
def test_memory_is_flat_when_growth_stays_small(growth, met):
    memory = {"images": 10000, "backend": "onnxruntime", "batch": 32, "input": "1080p", "warmup_fraction": 0.1,
              "rss": {"at_warmup_mb": 900.0, "peak_after_mb": 900.0 + growth, "end_mb": 900.0, "growth_mb": growth}, "gpu": None}
    t = by_name({"model": {"config": DEFAULT}, "runs": [], "memory": memory})
    assert t["Memory: resident memory flat over 10000 images"]["met"] is met
