"""Cross tables, report.json / report.md and the other files of a run: models × datasets."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation import tables
from fakelocator.evaluation.runner import EvalSettings, Evaluation
from fakelocator.evaluation.suite import DatasetSpec, SuiteConfig, dataset_specs, gamma_at, run_suite, unique_names

TINY_CHECKPOINT = Path(__file__).parents[1] / "export" / "data" / "tiny_trained.safetensors"


def fake_evaluation(model: str, dataset: str, acc: float, coss: float, cluster: float | None = None) -> Evaluation:
    metrics = {k: math.nan for k in ("real_acc", "fake_acc", "auc", "eer", "psnr", "ssim", "iou")}
    metrics.update(acc=acc, coss=coss)
    return Evaluation(model, dataset, {}, metrics, [], {}, None if cluster is None else {"mean": cluster}, [], [], {})


def test_a_cross_table_is_models_by_datasets():
    evs = [fake_evaluation(m, d, acc=0.1 * i + 0.01 * j, coss=0.5)
           for i, m in enumerate(("a", "b")) for j, d in enumerate(("x", "y", "z")) if (m, d) != ("b", "z")]
    t = tables.cross_table(evs, "acc")
    assert t["models"] == ["a", "b"] and t["datasets"] == ["x", "y", "z"]
    assert t["values"] == [[0.0, 0.01, 0.02], [0.1, 0.11, None]]  # (b, z) was not evaluated
    assert tables.cross_table(evs, "auc")["values"][0] == [None, None, None]  # undefined is None, not NaN
    md = tables.cross_table_md(t)
    assert "| a | 0.0000 | 0.0100 | 0.0200 |" in md and "| b | 0.1000 | 0.1100 | — |" in md


def test_cluster_accuracy_gets_a_cross_table_when_it_was_run():
    evs = [fake_evaluation("a", "x", 1, 1, cluster=0.8), fake_evaluation("a", "y", 1, 1)]
    assert tables.cross_tables(evs)["cluster_acc"]["values"] == [[0.8, None]]
    assert "cluster_acc" not in tables.cross_tables([fake_evaluation("a", "x", 1, 1)])


def test_names_are_made_unique():
    assert unique_names(["model", "model", "other"], ["runs/a/model.onnx", "runs/b/model.onnx", "x/other.onnx"]) == \
        ["a/model", "b/model", "other"]
    assert unique_names(["m", "m"], ["m.onnx", "m.onnx"]) == ["m", "m#2"]


def test_dataset_specs():
    specs = dataset_specs(["d/one", "e/two"], real_dirs=["ffhq"], entire_dirs=[])
    assert [s.name for s in specs] == ["one", "two"] and all(s.real_dirs == ("ffhq",) for s in specs)
    assert dataset_specs([], real_dirs=["ffhq"], entire_dirs=["sg2"])[0].name == "ffhq+sg2"
    with pytest.raises(FakeLocatorError, match="nothing to evaluate on"):
        dataset_specs([])


# ---- a whole run: 2 models (ONNX on onnxruntime, checkpoint on torch) × 2 datasets --------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory, red_model, dataset, by_hand):
    root = tmp_path_factory.mktemp("suite")
    folders = by_hand.make_dataset(root / "folders", n_pairs=4, n_entire=1, seed=1)  # no manifest
    config = SuiteConfig(
        models=(str(red_model), str(TINY_CHECKPOINT)),
        datasets=(DatasetSpec.from_root(dataset), DatasetSpec.from_root(folders)),
        out=root / "out",
        settings=EvalSettings(robustness={"jpeg": (75,), "disorganize": (2,)}, cluster=True, save_maps=1),
        device="cpu", batch_size=4, workers=2,
    )
    return run_suite(config)


def test_report_json_is_strict_json_with_every_section(run):
    report = json.loads(run.report_json.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert [m["name"] for m in report["models"]] == ["red", "tiny_trained"]
    assert [m["backend"] for m in report["models"]] == ["onnxruntime", "torch"]
    assert report["models"][0]["sha256"] and report["models"][0]["provenance"] == {"made_by": "tests/helpers/models.py"}
    assert [d["name"] for d in report["datasets"]] == ["pairs", "folders"]
    assert report["datasets"][1]["counts"] == {"real": 4, "partial": 4, "entire": 1}
    assert len(report["evaluations"]) == 4
    e = report["evaluations"][0]
    for key in ("acc", "real_acc", "fake_acc", "auc", "eer", "coss", "psnr", "ssim", "dice", "iou", "pbca", "iinc"):
        assert key in e["metrics"]
    assert e["robustness"]["jpeg"]["levels"] == [75] and "coss" in e["robustness"]["jpeg"]["gamma"][0]
    assert len(e["clustering"]["accuracies"]) == 10
    assert report["settings"]["threshold"] is None and report["models"][0]["threshold"] == 0.5  # the model's own
    assert report["settings"]["robustness"] == {"jpeg": [75], "disorganize": [2]}
    table = report["cross_tables"]["coss"]
    assert table["models"] == ["red", "tiny_trained"] and table["datasets"] == ["pairs", "folders"]
    assert table["values"][0][0] == pytest.approx(run.evaluations[0].metrics["coss"])
    assert gamma_at(report, "red", "pairs", "jpeg", 75, "coss") == pytest.approx(e["robustness"]["jpeg"]["gamma"][0]["coss"])


def test_report_md_has_the_tables_a_person_reads(run):
    md = run.report_md.read_text()
    for heading in ("## Models", "## Datasets", "## Metrics", "## Cross tables", "### By kind and property",
                    "### Robustness", "### Single-sample clustering", "## Timings"):
        assert heading in md
    header = next(line for line in md.splitlines() if line.startswith("| model | dataset | images |"))
    assert header.split("|")[4:-1] == [f" {c} " for c in ("ACC", "real ACC", "fake ACC", "AUC", "EER", "COSS", "PSNR",
                                                           "SSIM", "Dice@0.1", "IoU@0.1", "PBCA@0.1", "IINC@0.1")]
    widths, table = [], []
    for line in md.splitlines() + [""]:  # every row of every table has as many cells as its header
        if line.startswith("|"):
            table.append(line.count(" | ") + 1)
        elif table:
            widths.append(table)
            table = []
    assert len(widths) >= 8 and all(len(set(t)) == 1 for t in widths)
    assert "nan" not in md.lower()


def test_the_other_files(run):
    out = run.out
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (14 + 9)
    assert {r["kind"] for r in rows} == {"real", "partial", "entire"} and rows[0]["model"] == "red"
    with open(out / "robustness.csv") as f:
        assert {r["test"] for r in csv.DictReader(f)} == {"jpeg", "disorganize"}
    files = json.loads(run.report_json.read_text())["files"]
    for rel in [*files["robustness_plots"].values(), *files["clustering_plots"].values()]:
        assert (out / rel).read_bytes()[:4] == b"\x89PNG"
    assert sum(len(v) for v in files["examples"].values()) == 4
    assert not list(out.rglob("*.tmp"))


def test_an_existing_report_is_not_replaced_silently(run):
    config = SuiteConfig(models=(None,), datasets=(DatasetSpec("x", ("nowhere",)),), out=run.out)
    with pytest.raises(FakeLocatorError, match="--overwrite"):
        run_suite(config)


def test_limit_takes_a_seeded_subset(dataset):
    spec = DatasetSpec.from_root(dataset)
    a, b = spec.load(limit=5, seed=0), spec.load(limit=5, seed=0)
    assert len(a) == 5 and a == b and spec.load(limit=5, seed=1) != a
    assert len(spec.load(limit=100)) == 14
