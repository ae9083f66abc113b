"""``locate_dataset`` and ``fakelocator batch`` on a local Ray cluster (2 CPUs, two actors).

One Ray session serves the module (starting Ray takes ~10 s on 2 cores); it is shut down at the
end, with every process it started. Actors take half a CPU each so that Ray Data's own read tasks
still find a CPU on a 2-CPU cluster.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'fakelocator[ray]')")
pytest.importorskip("ray.data")

from fakelocator.cli import main as fakelocator_main  # noqa: E402
from fakelocator.integrations.ray import locate_dataset, pool_options  # noqa: E402
from fakelocator.runtime.cli import main as trt_locate  # noqa: E402

from integrations.conftest import CORRUPT, IMAGES, write_inputs, write_video  # noqa: E402

#: Two actors of half a CPU each, one inference thread and one decoding thread each.
POOL = dict(concurrency=2, num_cpus=0.5, backend="onnxruntime", threads=1, workers=1)


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    import ray.data

    tests = str(Path(__file__).resolve().parents[1])  # workers import helpers.ray_faults from here
    path = os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    except Exception as e:  # noqa: BLE001 - whatever keeps Ray from starting here is the reason to skip
        pytest.skip(f"Ray cannot start a local cluster here: {type(e).__name__}: {e}")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield
    finally:
        ray.shutdown()


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trt_locate_run(inputs, red_model, tmp_path_factory) -> dict[str, dict]:
    """trt-locate's records on the same files, by absolute path (its maps are read through ``out``)."""
    out = tmp_path_factory.mktemp("trt-locate")
    code = trt_locate([str(inputs), "--out", str(out), "--model", str(red_model), "--backend", "onnxruntime",
                       "--threads", "1", "--quiet"])
    assert code == 1  # the two corrupt files
    return {r["path"]: {**r, "_out": out} for r in records(out)}


def test_rows_equal_trt_locates_records_and_maps(inputs, red_model, trt_locate_run):
    ds = ray.data.read_binary_files(str(inputs), include_paths=True)
    rows = locate_dataset(ds, red_model, batch_size=8, **POOL).take_all()

    counts = Counter(r["path"] for r in rows)
    assert set(counts) == set(trt_locate_run) and set(counts.values()) == {1}  # every input exactly once
    assert len(rows) == IMAGES + len(CORRUPT)
    for row in rows:
        want = trt_locate_run[row["path"]]
        if Path(row["path"]).name in CORRUPT:
            assert row["error"] and row["error"] == want["error"] and row["map_png"] is None
            continue
        assert row["error"] is None and want["error"] is None
        assert abs(row["score"] - want["score"]) <= 1e-6
        assert (row["label"], row["width"], row["height"], row["bbox"], row["tiles"]) == (
            want["label"], want["width"], want["height"], want["bbox"], want["tiles"])
        assert row["map_png"] == (want["_out"] / want["map"]).read_bytes()  # byte-identical maps


def test_an_actor_killed_mid_run_is_restarted_and_nothing_is_lost_or_doubled(inputs, red_model, tmp_path):
    from helpers.ray_faults import DiesOnce

    paths = sorted(str(p) for p in inputs.rglob("*") if p.is_file())
    victim, marker = paths[len(paths) // 2], tmp_path / "killed-once"
    ds = ray.data.read_binary_files(paths, include_paths=True)
    options = pool_options(
        red_model, dict(column="bytes", path_column="path", victim=victim, marker=str(marker)),
        batch_size=4, concurrency=2, num_gpus=0, num_cpus=0.5, inference_batch_size=8,
        locator_options=dict(backend="onnxruntime", threads=1, workers=1),
    )
    rows = ds.map_batches(DiesOnce, **options).take_all()
    assert marker.exists()  # an actor did die with the victim's batch in hand
    assert sorted(r["path"] for r in rows) == paths  # each input exactly once
    assert sum(r["error"] is None for r in rows) == IMAGES


def test_batch_twice_on_one_output_resumes(red_model, tmp_path):
    root = write_inputs(tmp_path / "uploads", count=8)
    write_video(root / "clips" / "clip.avi", frames=4)
    out = tmp_path / "out"
    argv = ["batch", str(root), "--out", str(out), "--model", str(red_model), "--backend", "onnxruntime",
            "--concurrency", "2", "--cpus-per-actor", "0.5", "--threads", "1", "--rows-per-call", "4"]

    assert fakelocator_main(argv) == 1  # the corrupt files failed
    first = records(out)
    kinds = Counter(r["kind"] for r in first)
    assert kinds == {"image": 8 + len(CORRUPT), "frame": 4, "video": 1}
    for r in first:
        if r["kind"] != "video" and r["error"] is None:
            assert (out / r["map"]).is_file() and r["map"].startswith("maps/")
    assert (out / "maps" / "clips" / "clip" / "000003.png").is_file()  # trt-locate's frame maps

    # A run killed before its last records: drop three image records, as if their inputs never finished.
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    dropped = [i for i, line in enumerate(lines) if '"kind":"image"' in line][-3:]
    (out / "results.jsonl").write_text("".join(line for i, line in enumerate(lines) if i not in dropped))

    assert fakelocator_main(argv) == 1
    second = records(out)
    assert len(second) == len(first)  # the three again, nothing else
    assert Counter((r["kind"], r["path"], r["frame"]) for r in second) == Counter(
        (r["kind"], r["path"], r["frame"]) for r in first)

    assert fakelocator_main(argv) == 1  # all recorded: nothing runs, the earlier failures still count
    assert len(records(out)) == len(first)


def test_batch_writes_parquet_parts_and_resumes_from_them(red_model, tmp_path):
    import pyarrow.parquet as pq

    from fakelocator.integrations.batch import BatchOptions, run_batch

    root = write_inputs(tmp_path / "uploads", count=6, corrupt=False)
    options = BatchOptions(model=str(red_model), concurrency=2, num_cpus=0.5, results="parquet",
                           locator_options=dict(backend="onnxruntime", threads=1, workers=1))
    stats = run_batch(root.as_uri(), (tmp_path / "out").as_uri(), options, log=lambda line: None)
    assert (stats.images, stats.failed, stats.skipped) == (6, 0, 0)
    table = pq.read_table(tmp_path / "out" / "results")
    assert sorted(table.column("path").to_pylist()) == sorted(f"{root.as_uri()}/{p.relative_to(root).as_posix()}"
                                                              for p in root.rglob("*.*"))
    assert all((tmp_path / "out" / m).is_file() for m in table.column("map").to_pylist())

    (root / "late.png").write_bytes((root / "img-001.png").read_bytes())
    stats = run_batch(root.as_uri(), (tmp_path / "out").as_uri(), options, log=lambda line: None)
    assert (stats.images, stats.skipped) == (1, 6)
    assert pq.read_table(tmp_path / "out" / "results").num_rows == 7


def test_actors_that_would_hold_every_cpu_are_warned_about(inputs, red_model):
    ds = ray.data.read_binary_files(str(inputs), include_paths=True)
    with pytest.warns(UserWarning, match="hold all 2 CPUs of the Ray cluster"):
        locate_dataset(ds, red_model, concurrency=2, num_cpus=1)  # lazy: nothing runs, and nothing would finish
