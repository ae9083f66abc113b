"""The run specification (fakelocator.runtime.spec): one resolver of a run's options, the model's
own under the user's; and the model's calibrated threshold read wherever a label is given.

The red model (tests/helpers/models.py) scores a flat image of red level 190 (BGR channel 2) 0.63:
"fake" by the default threshold 0.5, "real" by a model that states 0.7.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import DEFAULT_THRESHOLD
from fakelocator.runtime import Locator
from fakelocator.runtime.backends.base import ModelInfo
from fakelocator.runtime.spec import DEFAULT_MAX_TILES, RunSpec, resolve_spec
from helpers.models import with_threshold

FIT = Preprocessing(height=32, width=32)
NATIVE = Preprocessing(height=32, width=32, analysis="native", tile_overlap=8, tile_pooling="mean")


def info(contract=FIT, threshold=DEFAULT_THRESHOLD) -> ModelInfo:
    return ModelInfo(path="m.onnx", format="onnx", preprocessing=contract, threshold=threshold)


def between_thresholds() -> np.ndarray:
    image = np.zeros((40, 48, 3), np.uint8)
    image[..., 2] = 190
    return image


@pytest.fixture(scope="module")
def model_at_07(red_model, tmp_path_factory):
    return with_threshold(red_model, tmp_path_factory.mktemp("calibrated") / "red-0.7.onnx", 0.7)


# ---- the resolver -----------------------------------------------------------------------------------


def test_the_models_own_options_when_the_user_gives_none():
    spec = resolve_spec(info(NATIVE, threshold=0.7))
    assert spec == RunSpec(contract=NATIVE, threshold=0.7, batch_size=8, max_tiles=DEFAULT_MAX_TILES)
    assert spec.native and spec.pipeline == "host"


def test_the_users_options_over_the_models():
    spec = resolve_spec(info(NATIVE, threshold=0.7), threshold=0.25, analysis="fit", batch_size=3, max_tiles=None)
    assert (spec.analysis, spec.threshold, spec.batch_size, spec.max_tiles) == ("fit", 0.25, 3, None)
    tiles = resolve_spec(info(FIT), analysis="native", tile_overlap=4, tile_pooling="top2").contract
    assert (tiles.analysis, tiles.tile_overlap, tiles.tile_pooling) == ("native", 4, "top2")


def test_the_backends_batch_limits_are_part_of_the_spec():
    assert resolve_spec(info(), batch_size=64, max_batch=16).batch_size == 16
    assert resolve_spec(info(), batch_size=3, fixed_batch=8).batch_size == 8
    assert resolve_spec(info(), batch_size=3).on("device", max_batch=2).batch_size == 2


@pytest.mark.parametrize("options, message", [
    ({"batch_size": 0}, "batch_size"), ({"max_tiles": 0}, "max_tiles"), ({"threshold": 1.5}, "threshold"),
    ({"threshold": True}, "threshold"), ({"analysis": "native", "tile_overlap": 16}, "overlap"), ({"analysis": "whole"}, "analysis"),
])
def test_bad_options_are_refused_naming_them(options, message):
    with pytest.raises(FakeLocatorError, match=message):
        resolve_spec(info(), **options)


def test_the_locator_runs_the_resolved_spec(red_model):
    with Locator.load(red_model, device="cpu", analysis="native", tile_overlap=4, batch_size=5) as locator:
        assert locator.spec.contract.analysis == "native" and locator.spec.batch_size == 5
        assert (locator.contract, locator.threshold, locator.pipeline) == (locator.spec.contract, 0.5, "host")
        with pytest.raises(AttributeError):
            locator.threshold = 0.9  # the spec is frozen: a locator is rebuilt, not re-tuned


# ---- the model's calibrated threshold, everywhere ------------------------------------------------------


def test_a_model_without_a_threshold_reads_the_default(red_model):
    with Locator.load(red_model, device="cpu") as locator:
        assert locator.info.threshold == DEFAULT_THRESHOLD == locator.threshold
        assert locator.locate(between_thresholds()).label == "fake"


def test_locator_labels_by_the_models_threshold(model_at_07):
    with Locator.load(model_at_07, device="cpu") as locator:
        assert locator.info.threshold == 0.7 == locator.spec.threshold
        result = locator.locate(between_thresholds())
        assert 0.5 < result.score < 0.7 and result.label == "real"
    with Locator.load(model_at_07, device="cpu", threshold=0.5) as locator:  # the user's wins
        assert locator.locate(between_thresholds()).label == "fake"


def test_trt_locate_labels_by_the_models_threshold(model_at_07, tmp_path):
    from fakelocator.runtime.cli import main

    cv2.imwrite(str(tmp_path / "a.png"), between_thresholds())
    for extra, label in (([], "real"), (["--threshold", "0.5"], "fake")):
        out = tmp_path / f"out{len(extra)}"
        assert main([str(tmp_path / "a.png"), "--out", str(out), "--model", str(model_at_07), "--device", "cpu",
                     "--quiet", *extra]) == 0
        [record] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert 0.5 < record["score"] < 0.7 and record["label"] == label


def test_fakelocator_eval_scores_by_the_models_threshold(model_at_07, tmp_path, capsys):
    from fakelocator.cli import main

    # one real image between the thresholds (a false alarm at 0.5), one plainly real, and their fakes
    data = tmp_path / "data"
    for folder in ("real", "fake"):
        (data / folder).mkdir(parents=True)
    for name, real in (("a.png", between_thresholds()), ("b.png", np.full((40, 48, 3), 90, np.uint8))):
        cv2.imwrite(str(data / "real" / name), real)
        fake = real.copy()
        fake[10:30, 12:36] = (0, 0, 255)
        cv2.imwrite(str(data / "fake" / name), fake)
    for extra, real_acc in (([], 1.0), (["--threshold", "0.5"], 0.5)):
        out = tmp_path / f"eval{len(extra)}"
        assert main(["eval", "--model", str(model_at_07), "--data", str(data), "--out", str(out), "--device", "cpu",
                     "--quiet", *extra]) == 0, capsys.readouterr().err
        report = json.loads((out / "report.json").read_text())
        assert report["models"][0]["threshold"] == (0.7 if not extra else 0.5)
        assert report["evaluations"][0]["metrics"]["real_acc"] == real_acc
