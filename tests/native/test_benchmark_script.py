"""benchmarks/kernels.py runs end to end on small frames (its numbers are not checked: it measures)."""

import json

from fakelocator.benchmarks import kernels


def test_the_kernel_benchmark_runs_and_writes_its_results(native_path, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FAKELOCATOR_NATIVE_LIB", str(native_path))
    from fakelocator.runtime import native

    native._reset_for_tests()
    out = tmp_path / "kernels.json"
    try:
        code = kernels.main(["--device", "cpu", "--batch", "2", "--height", "60", "--width", "90", "--threads", "1,2", "--repeats", "1", "--output", str(out)])
    finally:
        native._reset_for_tests()
    assert code == 0
    results = json.loads(out.read_text())
    assert results["checks"]["preprocess_max_abs_vs_contract"] <= 1e-5
    stages = {(r["stage"], r["path"].split(",")[0]) for r in results["rows"]}
    assert ("preprocess_fp32", "native cpu") in stages and ("upsample+overlay", "native cpu") in stages
    assert all(r["ms"] > 0 and r["gb_per_s"] > 0 for r in results["rows"])
    assert "preprocess_fp32" in capsys.readouterr().out
