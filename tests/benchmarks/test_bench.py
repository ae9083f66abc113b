"""The whole benchmark on a tiny model: it runs, records every field, and writes bench.json/md/png.

The numbers are not checked (they measure a shared machine); their presence, counts and the
relations between them are.
"""

import json

import pytest

from fakelocator.benchmarks.bench import BenchConfig, plan_variants, run_bench
from fakelocator.benchmarks.models import prepare
from fakelocator.benchmarks.report import write_all
from fakelocator.benchmarks.stages import STAGES
from fakelocator.errors import FakeLocatorError


def small_config(out, **overrides):
    base = dict(out=out, batches=(1, 2), inputs=("crop256", "direct224"), iterations=2, min_images=0, warmup=1, baseline_images=2,
                memory_run=12, memory_input="crop256", pool_size=2, threads=1, workers=2, device="cpu")
    base.update(overrides)
    return BenchConfig(**base)


@pytest.fixture(scope="module")
def results(tiny_files, tmp_path_factory):
    onnx_path, _ = tiny_files
    out = tmp_path_factory.mktemp("bench_out")
    messages = []
    r = run_bench(small_config(out, model=onnx_path), progress=messages.append)
    r["_messages"], r["_out"] = messages, out
    return r


def test_every_backend_batch_and_input_has_a_row(results):
    rows = {(r["backend"], r["precision"], r["batch"], r["input"]) for r in results["runs"]}
    assert rows == {(b, "fp32", n, k) for b in ("onnxruntime", "torch") for n in (1, 2) for k in ("crop256", "direct224")}
    assert any(s["backend"] == "tensorrt" for s in results["skipped"])  # no TensorRT here: skipped with its reason


def test_rows_record_stages_end_to_end_and_limits(results):
    flops = results["model"]["flops"]["flops_per_image"]
    for row in results["runs"]:
        assert set(row["stages"]) == set(STAGES)
        for stage in ("decode", "preprocess", "infer", "upsample", "write"):
            s = row["stages"][stage]
            assert s["samples"] == 2 and s["images"] == row["batch"] and s["p50_ms"] > 0  # the warm-up batch is not a sample
            assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
        assert row["stages"]["h2d"]["applicable"] is False and row["stages"]["d2h"]["applicable"] is False
        assert row["stage_ms_per_image"]["h2d"] is None
        e2e = row["end_to_end"]
        assert e2e["images"] == 2 * row["batch"] and e2e["latency"]["samples"] == 2
        assert e2e["images_per_s"] == pytest.approx(e2e["images"] / e2e["seconds"]) and e2e["cpu_ms_per_image"] > 0
        assert set(e2e["runtime_timings_ms_per_image"]) == {"decode", "preprocess", "infer", "upsample"}
        assert 0 < row["pre_post_fraction"] < 1
        infer_s = row["stages"]["infer"]["p50_ms"] / 1000
        assert row["limits"]["achieved_tflops"] == pytest.approx(flops * row["batch"] / infer_s / 1e12)
        assert "fraction_of_peak" not in row["limits"]  # on the CPU: achieved FLOP/s only
        assert row["limits"]["preprocess_gb_per_s"] > 0 and row["limits"]["upsample_fraction_of_host_copy"] > 0
        assert row["vs_baseline"] == pytest.approx(e2e["images_per_s"] / results["baseline"]["inputs"][row["input"]]["images_per_s"])


def test_records_the_environment_model_and_ceilings(results):
    env = results["environment"]
    for key in ("date", "cpu", "cpu_count", "usable_cores", "load_average_start", "load_average_end", "device", "git"):
        assert key in env
    for package in ("numpy", "cv2", "onnxruntime", "torch", "tensorrt"):
        assert package in env["versions"]
    assert env["versions"]["tensorrt"] is None and env["versions"]["numpy"]
    assert results["model"]["flops"]["complete"] and results["model"]["checkpoint"].endswith("model.safetensors")
    assert results["ceilings"]["host_copy"]["gb_per_s"] > 0 and results["ceilings"]["peak"] is None
    assert results["inputs"]["crop256"]["width"] == 256 and results["inputs"]["crop256"]["mean_bytes"] > 0


def test_times_the_baseline_and_a_memory_run(results):
    base = results["baseline"]
    assert base["weights"].startswith("the same weights")
    for kind in ("crop256", "direct224"):
        b = base["inputs"][kind]
        assert b["images"] == 2 and b["latency"]["samples"] == 2 and set(b["stages"]) == {"decode", "preprocess", "infer", "upsample"}
        runs = base["all_runs"][kind]  # on the CPU: torch's default threads and one thread; the faster counts
        assert [r["torch_threads"] for r in runs][1] == 1 and b["images_per_s"] == max(r["images_per_s"] for r in runs)
    mem = results["memory"]
    assert mem["images"] == 12 and mem["rss"]["growth_mb"] >= 0 and mem["gpu"] is None
    assert mem["samples"][-1]["images"] == 12


def test_evaluates_the_targets_without_claiming_what_it_did_not_measure(results):
    targets = {t["target"]: t for t in results["targets"]}
    assert targets["CPU end to end, 1080p JPEG"]["met"] is None  # neither 1080p nor the default model here
    assert all(t["met"] is None for name, t in targets.items() if name.startswith("GPU"))
    assert any(name.startswith("Memory") and t["measured"] is not None for name, t in targets.items())


def test_writes_json_markdown_and_png(results):
    paths = write_all({k: v for k, v in results.items() if not k.startswith("_")}, results["_out"])
    data = json.loads(paths["json"].read_text())
    assert data["schema"] == 1 and len(data["runs"]) == 8
    md = paths["markdown"].read_text()
    for heading in ("## End to end", "## Stages", "## Limits", "## Naive baseline", "## Memory", "## Targets", "## Skipped"):
        assert heading in md
    assert "| crop256 | onnxruntime | fp32 | cpu | fit | 2 |" in md and "n/a" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("images/s" in m for m in results["_messages"])


def test_small_batches_get_enough_iterations_for_their_percentiles(tmp_path):
    config = small_config(tmp_path, iterations=5, min_images=64)
    assert [config.iterations_for(b) for b in (1, 8, 32, 64, 128)] == [64, 8, 5, 5, 5]


def test_unavailable_named_backends_are_errors_and_defaults_skip(tiny_files, tmp_path):
    onnx_path, _ = tiny_files
    files = prepare(model=onnx_path, checkpoint=None, untrained=None, want_fp16_onnx=False, out_dir=tmp_path)
    with pytest.raises(FakeLocatorError, match="tensorrt"):
        plan_variants(small_config(tmp_path, backends=("tensorrt",)), files, "cpu", ("fp32",))
    variants, skipped = plan_variants(small_config(tmp_path), files, "cpu", ("fp32",))
    assert [v.label for v in variants] == ["onnxruntime fp32", "torch fp32"]
    files.checkpoint = None
    variants, skipped = plan_variants(small_config(tmp_path), files, "cpu", ("fp32",))
    assert [v.label for v in variants] == ["onnxruntime fp32"]
    assert any(s["backend"] == "torch" and "checkpoint" in s["reason"] for s in skipped)


@pytest.mark.parametrize("bad", [dict(batches=(0,)), dict(iterations=0), dict(inputs=("4k",)), dict(precisions=("int4",)),
                                 dict(memory_run=5)])
def test_config_refuses_nonsense(tmp_path, bad):
    with pytest.raises(FakeLocatorError):
        small_config(tmp_path, **bad)


def test_json_has_no_nan_or_infinity(tmp_path):
    from fakelocator.benchmarks.report import write_json

    path = write_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}}, tmp_path / "x.json")
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


@pytest.mark.needs_cuda
def test_a_gpu_run_times_the_copies_and_reads_the_device_ceilings(tiny_files, tmp_path):
    onnx_path, _ = tiny_files
    r = run_bench(small_config(tmp_path, model=onnx_path, device="cuda", backends=("torch",), memory_run=0), progress=lambda m: None)
    assert {row["precision"] for row in r["runs"]} == {"fp16", "fp32"} and all(row["device"] == "cuda:0" for row in r["runs"])
    for row in r["runs"]:
        assert row["stages"]["h2d"]["p50_ms"] > 0 and row["stages"]["d2h"]["p50_ms"] > 0
        assert row["limits"]["achieved_tflops"] > 0 and row["limits"]["measured_matmul_tflops"] > 0
    assert r["ceilings"]["device_copy"]["gb_per_s"] > 0 and r["ceilings"]["matmul"]["fp16_tflops"] > 0
    assert r["environment"]["gpu"]["name"] and r["baseline"]["inputs"]["crop256"]["device"] == "cuda:0"


def test_an_analysis_sweep_times_fit_and_native_with_their_own_stages(mean_model, tmp_path):
    from fakelocator.benchmarks.report import markdown
    from fakelocator.benchmarks.stages import NATIVE_STAGES
    from fakelocator.tiling import TileGrid

    config = small_config(tmp_path, model=mean_model, backends=("onnxruntime",), batches=(4,), inputs=("crop256",),
                          baseline=False, memory_run=12, analyses=("fit", "native"), tile_overlap=8, tile_pooling="top2")
    results = run_bench(config, progress=lambda m: None)
    rows = {r["analysis"]: r for r in results["runs"]}
    assert set(rows) == {"fit", "native"}
    assert set(rows["fit"]["stages"]) == set(STAGES) and "tiles_per_image" not in rows["fit"]
    native = rows["native"]
    assert set(native["stages"]) == set(NATIVE_STAGES)
    assert native["tiles_per_image"] == len(TileGrid.of(256, 256, 32, 32, 8)) == 121
    assert (native["tile_overlap"], native["tile_pooling"]) == (8, "top2")
    for stage in ("decode", "tile", "infer", "stitch", "write"):
        assert native["stages"][stage]["p50_ms"] > 0 and native["stage_ms_per_image"][stage] > 0
    assert set(native["end_to_end"]["runtime_timings_ms_per_image"]) == {"decode", "tile", "infer", "stitch"}
    assert native["limits"]["tile_gb_per_s"] > 0 and native["limits"]["stitch_bytes_per_image"] == 121 * 32 * 32 * 4 + 256 * 256 * 4
    assert 0 < native["pre_post_fraction"] < 1
    assert results["memory"]["analysis"] == "native"
    text = markdown(results)
    assert "native (121 tiles)" in text and "preprocess / tile" in text
    assert any(t["target"].startswith("native: tile + stitch share") for t in results["targets"])
