"""The attention experiment script (scripts/experiments/attention_experiment.py) still runs, on a tiny setting."""

from __future__ import annotations

import json

import numpy as np

import attention_experiment  # scripts/experiments/ is on the tests' path (pyproject.toml)


def load_script():
    return attention_experiment


def test_the_generator_edits_only_around_the_propertys_region():
    from fakelocator.training.attention.labels import LABELS, region_mask, region_spec
    from fakelocator.training.groundtruth import partial_manipulation_map

    ex = load_script()
    rng = np.random.default_rng(0)
    labels = ex.face_labels(rng)
    assert labels.shape == (ex.SIZE, ex.SIZE) and {"hair", "skin", "u_lip", "l_eye"} <= {LABELS[i] for i in np.unique(labels)}
    real = ex.render(rng, labels)
    for prop in ex.TEST_PROPERTIES:
        gt = partial_manipulation_map(real, ex.make_fake(rng, real, labels, prop))
        region = region_mask(labels, region_spec(prop))
        assert gt[region].mean() > 3 * gt[~region].mean() > 0, prop


def test_the_experiment_runs_end_to_end_on_a_tiny_setting(tmp_path, capsys):
    ex = load_script()
    assert ex.main(["--out", str(tmp_path), "--pairs", "4", "--test-pairs", "2", "--epochs", "1", "--seeds", "0"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert {(r["attention"], r["test"]) for r in results} == {(a, t) for a in (False, True) for t in ex.TEST_PROPERTIES}
    assert "| Black hair | acc |" in capsys.readouterr().out
    assert len(list((tmp_path / "data" / "train_Blond_hair" / ".attention" / "oracle").rglob("*.png"))) == 8
