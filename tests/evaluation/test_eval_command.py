"""`fakelocator eval` end to end, its help, and its errors (one line, exit 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fakelocator.cli import main


def test_help_lists_the_options():
    proc = subprocess.run([sys.executable, "-m", "fakelocator.cli", "eval", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--model", "--data", "--real-dir", "--entire-dir", "--backend", "--device", "--batch", "--threshold",
                   "--binarize-threshold", "--at-model-resolution", "--robustness", "--levels", "--cluster",
                   "--save-maps", "--quiet", "--out", "--held-out-families", "--contact-sheet", "--contact-include"):
        assert option in proc.stdout
    assert "Sec. V" in proc.stdout  # the module docstring is the description


def test_end_to_end(tmp_path, red_model, dataset, capsys):
    out = tmp_path / "out"
    rc = main(["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(out), "--device", "cpu",
               "--batch", "3", "--robustness", "blur,disorganize", "--levels", "blur=1,5", "--cluster",
               "--save-maps", "2", "--at-model-resolution", "--binarize-threshold", "0.2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "red on pairs: ACC 1.0000  AUC 1.0000" in captured.out and "IoU@0.2" in captured.out
    report = json.loads((out / "report.json").read_text())
    s = report["settings"]
    assert s["at_model_resolution"] and s["binarize_threshold"] == 0.2 and s["batch_size"] == 3
    assert s["robustness"] == {"blur": [1, 5], "disorganize": [2]}
    assert report["models"][0]["batch_size"] == 3
    e = report["evaluations"][0]
    assert e["robustness"]["blur"]["gamma"][0]["coss"] == pytest.approx(1.0)
    assert len(e["clustering"]["accuracies"]) == 10 and len(e["examples"]) == 2
    assert report["command"] == "" or report["command"].startswith("fakelocator eval")
    assert (out / "report.md").read_text().startswith("# fakelocator eval")
    assert not captured.err  # no progress bar: stderr is not a terminal


def test_baselines_groups_held_out_families_and_contact_sheet(tmp_path, red_model, dataset, capsys):
    out = tmp_path / "out"
    demo = tmp_path / "demo.png"
    cv2.imwrite(str(demo), np.full((40, 60, 3), 120, np.uint8))
    rc = main(["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(out), "--device", "cpu",
               "--held-out-families", "eyes", "--contact-sheet", "3", "--contact-include", str(demo)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "(constant map 0." in captured.out and "pixel AUC 0.99" in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["held_out_families"] == ["eyes"]
    e = report["evaluations"][0]
    assert {"manipulated", "partial", "entire"} == set(e["baselines"]["subsets"])
    partial = e["baselines"]["subsets"]["partial"]
    assert partial["coss_ratio"] > 2  # the red model beats the constant map by far on its own task
    assert partial["constant"]["pixel_auc"] == 0.5
    assert set(partial["centred_scales"]) == {f"{s:g}" for s in (0.05, 0.075, 0.11, 0.17, 0.25, 0.38)}
    held = [g for g in e["groups"] if g["group"] == "held-out family"]
    assert [(g["name"], g["n"]) for g in held] == [("eyes", 3)]
    sheet = out / report["files"]["contact_sheets"]["red on pairs"]
    assert sheet.is_file() and cv2.imread(str(sheet)).shape[0] > 3 * 192
    rows = report["files"]["contact_rows"]["red on pairs"]
    assert rows[0]["image"] == str(demo) and len(rows) == 3
    assert all(r["family"] == "eyes" for r in rows[1:])  # filled from the held-out family
    md = (out / "report.md").read_text()
    for text in ("COSS / constant", "### By manipulation family", "### By image size", "### Leave-families-out",
                 "![contact sheet of red on pairs](contact/red__pairs.png)", "pixel AUC"):
        assert text in md
    with open(out / "per_image.csv") as f:
        header = f.readline().strip().split(",")
    assert {"family", "width", "height", "pixel_auc", "f1_best", "f1_05"} <= set(header)


def test_progress_bar_on_a_terminal_and_quiet(tmp_path, red_model, dataset, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(tmp_path / "a"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "red on pairs" in err and "14/14" in err
    assert main(["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(tmp_path / "b"), "--device", "cpu",
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_failed_images_give_exit_status_1(tmp_path, red_model, dataset, capsys, by_hand):
    data = by_hand.make_dataset(tmp_path / "data", n_pairs=2, n_entire=0)
    png = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))[1].tobytes()
    (data / "real" / "truncated.png").write_bytes(png[: len(png) // 2])  # header fine, pixels missing
    rc = main(["eval", "--model", str(red_model), "--data", str(data), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert rc == 1
    assert "(1 failed)" in capsys.readouterr().out
    errors = json.loads((tmp_path / "out" / "report.json").read_text())["evaluations"][0]["errors"]
    assert len(errors) == 1 and errors[0]["image"].endswith("truncated.png")


@pytest.mark.parametrize("args, message", [
    (["--model", "missing.onnx"], "missing.onnx: no such file"),
    (["--levels", "blur=4"], "odd"),
    (["--robustness", "rain"], "unknown robustness test"),
    (["--threshold", "2"], "threshold must be in [0, 1]"),
    (["--data", "nowhere"], "nowhere: no such directory"),
    (["--held-out-families", "a,,b"], "empty family name"),
    (["--held-out-families", "eyes,pixel_shuffle"], "pixel_shuffle match no manipulated image in the data; its families are: "),
    (["--contact-sheet", "-1"], "--contact-sheet must be >= 0"),
    (["--contact-include", "nowhere.png"], "nowhere.png: no such file or folder"),
])
def test_user_errors_are_one_line(tmp_path, red_model, dataset, capsys, args, message):
    base = ["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(tmp_path / "out"), "--device", "cpu"]
    if args[0] in ("--model", "--data"):
        base = [a for i, a in enumerate(base) if not (a == args[0] or (i > 0 and base[i - 1] == args[0]))]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_no_data_and_existing_report(tmp_path, red_model, dataset, capsys):
    assert main(["eval", "--model", str(red_model)]) == 2
    assert "nothing to evaluate on" in capsys.readouterr().err
    args = ["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(tmp_path), "--device", "cpu", "--quiet"]
    assert main(args) == 0
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_evaluating_an_onnx_needs_no_torch(tmp_path, red_model, dataset):
    blocker = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision', 'tensorrt'):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from fakelocator.cli import main\n"
        f"code = main(['eval', '--model', {str(red_model)!r}, '--data', {str(dataset)!r}, '--out', 'out', '--device', 'cpu',"
        " '--robustness', 'disorganize', '--cluster', '--save-maps', '1', '--quiet'])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", blocker], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "report.json").is_file()


def test_the_default_model_is_used_without_model(tmp_path, dataset, capsys, monkeypatch):
    monkeypatch.setattr("fakelocator.runtime.locator.default_model_path", lambda: tmp_path / "model.onnx")
    assert main(["eval", "--data", str(dataset), "--out", str(tmp_path / "out")]) == 2
    assert "the default model is not installed" in capsys.readouterr().err


def test_analysis_options_reach_the_locator_and_the_report(tmp_path, red_model, dataset, capsys):
    from fakelocator.runtime import Locator

    out = tmp_path / "native"
    rc = main(["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(out), "--device", "cpu",
               "--analysis", "native", "--tile-overlap", "4", "--tile-pooling", "top2", "--cluster", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    s = report["settings"]
    assert (s["analysis"], s["tile_overlap"], s["tile_pooling"], s["max_tiles"]) == ("native", 4, "top2", 1024)
    run = report["models"][0]["analysis"]
    assert (run["analysis"], run["tile_overlap"], run["tile_pooling"]) == ("native", 4, "top2")
    assert report["models"][0]["preprocessing"]["analysis"] == "fit", "what the model was made for, kept apart"
    # what the evaluation scored is what a user's Locator returns for the same image and options
    per_image = (out / "per_image.csv").read_text().splitlines()
    assert len(per_image) > 1
    with Locator.load(red_model, device="cpu", analysis="native", tile_overlap=4, tile_pooling="top2") as loc:
        assert loc.contract.to_dict() == run
    rc = main(["eval", "--model", str(red_model), "--data", str(dataset), "--out", str(tmp_path / "x"), "--device", "cpu",
               "--analysis", "native", "--tile-overlap", "4", "--at-model-resolution", "--quiet"])
    assert rc == 2 and "fit analysis only" in capsys.readouterr().err
