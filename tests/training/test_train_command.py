import argparse
import json
import subprocess
import sys

import torch
import yaml

from fakelocator import cli
from fakelocator.commands import train as command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fakelocator train")
    command.add_arguments(p)
    return p


def resolved(*argv):
    return command.resolve_config(parser().parse_args(list(argv)))


def test_help_explains_every_option():
    help_text = subprocess.run(
        [sys.executable, "-m", "fakelocator.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert help_text.startswith("usage: fakelocator train")
    assert "docs/data.md" in help_text and "--resume continues" in help_text, "the module docstring is the description"
    for action in parser()._actions:
        if action.option_strings and action.dest != "help" and action.help != argparse.SUPPRESS:  # deprecated aliases hide
            assert action.help and len(action.help) > 15, action.option_strings
            assert all(o in help_text for o in action.option_strings)
    required = ["--config", "--resume", "--data", "--val", "--real-dir", "--entire-dir", "--backbone", "--no-classifier",
                "--loss", "--epochs", "--batch", "--lr", "--device", "--out", "--seed", "--max-steps",
                "--pretrained-backbone", "--p-real", "--p-fake", "--skip-invalid", "--workers"]
    assert all(o in help_text for o in required)


def test_options_override_the_yaml_file_which_overrides_the_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "data": ["from_yaml"], "epochs": 3, "lr": 0.001,
        "model": {"backbone": "deeplabv3_resnet50", "unet_width": 16},
        "augment": {"p_real": 0.5, "jpeg_quality": [30, 40]},
    }))
    config = resolved("--config", str(tmp_path / "c.yaml"), "--epochs", "7", "--no-classifier", "--p-fake", "0.2",
                      "--data", "a", "--data", "b", "--input-size", "64", "96", "--loss", "l2", "--betas", "0.9", "0.99")
    assert config.epochs == 7 and config.lr == 0.001 and config.batch_size == 8
    assert config.data == ("a", "b"), "--data replaces the file's list"
    assert config.model.backbone == "deeplabv3_resnet50" and config.model.unet_width == 16 and not config.model.classifier
    assert config.model.preprocessing.size == (64, 96)
    assert config.augment.p_real == 0.5 and config.augment.p_fake == 0.2 and config.augment.jpeg_quality == (30, 40)
    assert config.loss.map == "l2" and config.betas == (0.9, 0.99)
    assert resolved().epochs == 10


def test_init_weights_bring_their_network_settings_unless_some_are_given(tmp_path):
    from fakelocator.training.checkpoint import save_weights
    from fakelocator.training.config import ModelConfig
    from fakelocator.training.model import build_model

    weights = tmp_path / "m.safetensors"
    save_weights(weights, build_model(ModelConfig(unet_width=4, highpass_stem=True)))
    adopted = resolved("--init-weights", str(weights))
    assert adopted.init_weights == str(weights)
    assert adopted.model.unet_width == 4 and adopted.model.highpass_stem
    assert resolved("--init-weights", str(weights), "--unet-width", "16").model.unet_width == 16
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"unet_width": 12}}))
    assert resolved("--config", str(tmp_path / "c.yaml"), "--init-weights", str(weights)).model.unet_width == 12
    assert resolved("--init-weights", "default").init_weights.endswith("weights/default/model.safetensors")


def test_bad_settings_are_one_line_errors_not_tracebacks(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("epochz: 3\n")
    assert cli.main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    assert cli.main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert cli.main(["train", "--out", str(tmp_path / "o"), "--input-size", "30", "30", "--data", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("fakelocator train: error: ") for line in err)
    assert "epochz" in err[0] and "missing: no such directory" in err[1] and "multiple of 16" in err[2]


def test_the_command_trains_end_to_end_and_resumes(toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(toy_data["mixed"]), "--val-fraction", "0.25", "--input-size", "32", "32",
            "--unet-width", "4", "--epochs", "1", "--batch", "4", "--max-steps", "2", "--workers", "0",
            "--threads", "1", "--device", "cpu", "--seed", "3", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert f"model: {out / 'model.safetensors'}" in printed.out
    assert "train: 20 images" in printed.err and "epoch 1/1: train loss" in printed.err and " auc " in printed.err
    assert (out / "config.yaml").is_file() and (out / "checkpoints/epoch_001.pt").is_file()
    assert cli.main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0, "the run's config.yaml is the base"
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["train_config"]["seed"] == 3 and ckpt["train_config"]["val_fraction"] == 0.25
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["val"]["images"] >= 7


def test_a_native_model_is_asked_for_on_the_command_line(tmp_path, capsys):
    argv = ["train", "--print-config", "--backbone", "unet_res", "--analysis", "native", "--input-size", "256", "256",
            "--tile-pooling", "mean", "--tile-overlap", "16", "--out", str(tmp_path / "x")]
    assert cli.main(argv) == 0
    pre = yaml.safe_load(capsys.readouterr().out)["model"]["preprocessing"]
    assert (pre["analysis"], pre["height"], pre["tile_pooling"], pre["tile_overlap"]) == ("native", 256, "mean", 16)


def test_print_config_shows_the_resolved_settings_and_trains_nothing(tmp_path, capsys):
    assert cli.main(["train", "--print-config", "--epochs", "4", "--out", str(tmp_path / "x")]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["epochs"] == 4 and printed["model"]["backbone"] == "unet_lite"
    assert not (tmp_path / "x").exists()
