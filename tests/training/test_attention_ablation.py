"""The attention ablation script (scripts/experiments/attention_ablation.py) runs, on a tiny setting."""

from __future__ import annotations

import csv
import json

import attention_ablation  # scripts/experiments/ is on the tests' path (pyproject.toml)


def test_the_ablation_runs_end_to_end_on_a_tiny_setting(tmp_path, capsys):
    ex = attention_ablation
    assert ex.main(["--out", str(tmp_path), "--train-pairs", "1", "--test-pairs", "1", "--epochs", "1", "--seeds", "0",
                    "--size", "64"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["attention"] for r in results] == [False, True]
    assert set(results[0]["parts"]) == set(ex.PARTS) and all(p["n"] == 1 for p in results[0]["parts"].values())
    out = capsys.readouterr().out
    assert "| mouth | coss |" in out
    rows = list(csv.DictReader((tmp_path / "data" / "train" / "manifest.csv").open()))
    assert sorted(r["property"] for r in rows if r["kind"] == "partial") == sorted(ex.PARTS)
    assert json.loads((tmp_path / "data" / "train" / "regions.json").read_text())["mesh"] >= len(ex.PARTS), \
        "every edit's region is the mesh's part"
    assert len(list((tmp_path / "data" / "train" / ".attention" / "mesh").rglob("*.png"))) == 2 * len(ex.PARTS)
