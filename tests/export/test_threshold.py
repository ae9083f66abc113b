"""A decision threshold calibrated on held-out scores, written into a model's files."""

import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.export.threshold import calibrate_threshold, stamp_threshold
from fakelocator.metadata import THRESHOLD_KEY, ModelMetadata
from helpers.models import build_mean_model


def test_the_threshold_separates_two_separable_classes_in_the_middle_of_the_gap():
    t, figures = calibrate_threshold([0.1, 0.2, 0.25, 0.6, 0.7], [0, 0, 0, 1, 1])
    assert 0.25 < t <= 0.6 and figures["balanced_accuracy"] == 1.0


def test_the_threshold_does_not_depend_on_how_many_reals_the_split_has():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(0.3, 0.1, 200), rng.normal(0.6, 0.1, 200)
    t_even, _ = calibrate_threshold(np.r_[real, fake], np.r_[np.zeros(200), np.ones(200)])
    t_skew, _ = calibrate_threshold(np.r_[real, real, real, fake], np.r_[np.zeros(600), np.ones(200)])
    assert abs(t_even - t_skew) < 0.05 and 0.35 < t_even < 0.55


def test_calibration_refuses_one_class_or_bad_scores():
    with pytest.raises(FakeLocatorError, match="both classes"):
        calibrate_threshold([0.1, 0.2], [0, 0])
    with pytest.raises(FakeLocatorError, match="finite"):
        calibrate_threshold([0.1, float("nan")], [0, 1])


def test_stamped_onnx_reads_back_its_threshold_and_keeps_its_other_keys(tmp_path):
    import onnx

    from fakelocator.metadata import props_of

    path = build_mean_model(tmp_path / "m.onnx")
    before = props_of(onnx.load(str(path)))
    stamp_threshold(path, 0.37)
    after = props_of(onnx.load(str(path)))
    assert ModelMetadata.from_props(after).threshold == pytest.approx(0.37)
    assert {k: v for k, v in after.items() if k != THRESHOLD_KEY} == {k: v for k, v in before.items() if k != THRESHOLD_KEY}


def test_stamped_safetensors_keeps_its_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(4.0)}, str(path), metadata={"fakelocator.version": "x"})
    stamp_threshold(path, 0.42)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"fakelocator.version": "x", THRESHOLD_KEY: "0.42"}
        assert torch.equal(f.get_tensor("a"), torch.arange(4.0))
    with pytest.raises(FakeLocatorError, match="only stamp"):
        stamp_threshold(tmp_path / "w.pt", 0.5)
