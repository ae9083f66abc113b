"""Synthesis draws face parts from the face mesh's masks (training/synth/face_masks.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fakelocator.training.synth import SynthConfig, synthesize_one
from fakelocator.training.synth.face_masks import part_mask, photo_labels, view_labels
from fakelocator.training.synth.photos import bundled_photos
from fakelocator.training.synth.regions import make_region


@pytest.fixture(scope="module")
def astronaut():
    photos, _ = bundled_photos()
    (photo,) = [p for p in photos if p.name.endswith("astronaut")]
    return photo


def centre_row(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[0].mean())


def test_face_parts_come_from_the_mesh_masks_of_the_view(astronaut):
    from fakelocator.training.synth.synthesize import load_photo

    image = load_photo(astronaut)
    labels = photo_labels(astronaut.sha256, image)
    assert labels is not None and labels.shape == image.shape[:2]
    view = view_labels(labels, (150, 30, 150, 150), (200, 200), True)
    assert view.shape == (200, 200)
    expected = cv2.resize(labels[30:180, 150:300], (200, 200), interpolation=cv2.INTER_NEAREST)[:, ::-1]
    np.testing.assert_array_equal(view, expected), "the view's crop, size and flip"
    cfg = SynthConfig()
    rows = {}
    for kind in ("hair", "eyes", "nose", "mouth", "face"):
        region = make_region(kind, view.shape, np.random.default_rng(0), cfg, faces=((60, 40, 80, 90),), labels=view)
        assert region.face_source == "mesh", kind
        part = part_mask(view, kind)
        inside = region.mask[part].mean()
        assert inside > 0.9, f"{kind}: the region covers its part ({inside:.2f})"
        rows[kind] = centre_row(region.mask > 0.5)
    assert rows["hair"] < rows["eyes"] < rows["nose"] < rows["mouth"]


def test_a_face_part_item_records_that_its_region_came_from_the_mesh(astronaut):
    cfg = SynthConfig(region_weights={"mouth": 1.0})
    sources = {synthesize_one(astronaut, np.random.default_rng(seed), cfg, kind="partial").info["face_source"] for seed in range(6)}
    assert "mesh" in sources and sources <= {"mesh", "detected", "random"}


def test_without_labels_face_parts_keep_the_box_layout():
    region = make_region("mouth", (400, 400), np.random.default_rng(1), SynthConfig(), faces=((100.0, 80.0, 200.0, 200.0),))
    assert region.face_source == "detected"
