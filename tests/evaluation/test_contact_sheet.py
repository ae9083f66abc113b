"""Contact sheets: which images, and the rendered PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation import contact_sheet as C
from fakelocator.evaluation.runner import EvalSettings, evaluate
from fakelocator.training.samples import Sample, load_samples


def _samples(n_families: int = 3, per_family: int = 4) -> tuple[list[Sample], list[dict]]:
    samples, records = [], []
    for f in range(n_families):
        for k in range(per_family):
            samples.append(Sample(Path(f"/data/f{f}_{k}.png"), "entire", property="entire"))
            records.append({"label": 1, "score": 0.5, "family": f"fam{f}"})
    samples.append(Sample(Path("/data/real.png"), "real"))
    records.append({"label": 0, "score": 0.1, "family": "real"})
    return samples, records


def test_selection_takes_every_family_in_turn_and_only_fakes():
    samples, records = _samples()
    picks = C.select(samples, records, 6)
    assert len(picks) == 6
    assert sorted(p.family for p in picks) == ["fam0", "fam0", "fam1", "fam1", "fam2", "fam2"]
    assert all(p.sample.kind != "real" for p in picks)
    assert C.select(samples, records, 6) == picks  # seeded
    assert len(C.select(samples, records, 100)) == 12  # every fake, no more


def test_selection_prefers_held_out_families_and_skips_failed_images():
    samples, records = _samples()
    records[8]["score"] = None  # fam2's first image failed
    picks = C.select(samples, records, 5, held_out=("fam2",))
    assert [p.family for p in picks] == ["fam2"] * 3  # only the held-out family, and only what was evaluated
    assert all(p.sample.image != Path("/data/f2_0.png") for p in picks)


def test_included_images_come_first(tmp_path):
    samples, records = _samples()
    outside = tmp_path / "demo.png"
    cv2.imwrite(str(outside), np.zeros((8, 8, 3), np.uint8))
    picks = C.select(samples, records, 3, include=[outside])
    assert picks[0] == C.Pick(outside) and len(picks) == 3
    with pytest.raises(FakeLocatorError, match="no such file or folder"):
        C.select(samples, records, 3, include=[tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FakeLocatorError, match="holds no images"):
        C.select(samples, records, 3, include=[tmp_path / "empty"])


def test_contact_sheet_renders_rows_of_four_panels(tmp_path, locator, dataset, by_hand):
    samples = load_samples(dataset)
    e = evaluate(locator, samples, EvalSettings())
    outside = tmp_path / "outside.png"
    by_hand.write_rgb(outside, by_hand.smooth_image(np.random.default_rng(1), 50, 70, (0, 40)))
    real = next(s for s in samples if s.kind == "real")
    path, rows = C.write_contact_sheet(locator, samples, e.records, tmp_path / "sheet.png", 4,
                                       include=[outside, real.image], title="red on pairs")
    assert path.is_file()
    sheet = cv2.imread(str(path))
    assert len(rows) == 4
    row_h = C.CAPTION_HEIGHT + C.PANEL_HEIGHT + C.GAP
    assert sheet.shape[0] == C.CAPTION_HEIGHT + 4 + 4 * row_h
    assert sheet.shape[1] > 4 * C.PANEL_HEIGHT  # input | GT | map | overlay + colour bar, side by side
    assert rows[0]["kind"] == "not in the dataset" and np.isnan(rows[0]["pixel_auc"])
    assert rows[1]["kind"] == "real" and np.isnan(rows[1]["pixel_auc"])
    fakes = rows[2:]
    assert all(r["kind"] != "real" for r in fakes)
    # The numbers on the sheet are the evaluation's own.
    by_image = {str(s.image): r for s, r in zip(samples, e.records)}
    for r in fakes:
        rec = by_image[r["image"]]
        assert r["score"] == pytest.approx(rec["score"], abs=1e-6)
        if rec["kind"] == "partial":
            assert r["pixel_auc"] == pytest.approx(rec["pixel_auc"], abs=1e-9)
        assert r["coss"] == pytest.approx(rec["coss"], abs=1e-6)


def test_compose_pads_rows_to_the_widest():
    rows = [np.zeros((30, 50, 3), np.uint8), np.zeros((30, 80, 3), np.uint8)]
    sheet = C.compose(rows, "t")
    assert sheet.shape == (C.CAPTION_HEIGHT + 4 + 2 * (30 + C.GAP), 80, 3)
    with pytest.raises(FakeLocatorError, match="no images"):
        C.compose([])
