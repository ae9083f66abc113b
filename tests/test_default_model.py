"""The embedded default model: shipped, small, self-describing, consistent across its three files,
and doing its job on the committed samples (made with its training recipe, another seed)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.runtime import Locator, default_model_path

WEIGHTS = default_model_path().parent
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
RECIPE = ROOT / "configs" / "synth_default.json"
#: Floors for the shipped model on 40 fresh items of its recipe, well below what it measured
#: (AUC 0.97, mean map 4.0× brighter inside the region than outside): they catch a broken or
#: untrained model, not a small regression.
AUC_FLOOR = 0.8
REGION_CONTRAST = 2.0


@pytest.fixture(scope="module")
def locator():
    with Locator.load(backend="onnxruntime", device="cpu", threads=2) as loc:
        yield loc


def test_the_package_ships_the_model_in_three_files_under_25_mb():
    files = {p.name: p.stat().st_size for p in WEIGHTS.iterdir()}
    assert {"model.onnx", "model.fp16.onnx", "model.safetensors"} <= set(files)
    assert sum(files.values()) <= 25 * 2**20


def test_it_loads_with_no_model_named_and_carries_the_contract_and_its_provenance(locator):
    info = locator.info
    assert Path(info.path) == default_model_path()
    assert info.preprocessing == Preprocessing()
    assert info.config["backbone"] == "unet_lite" and info.config["highpass_stem"] is True
    assert info.provenance["seed"] == 0 and info.provenance["train_images"]


def test_it_maps_every_sample_at_full_resolution(locator):
    for path in sorted(SAMPLES.glob("*.png")):
        h, w = cv2.imread(str(path)).shape[:2]
        result = locator.locate(path)
        assert result.map.shape == (h, w) and result.map.dtype == np.float32
        assert 0 <= result.map.min() and result.map.max() <= 1 and 0 <= result.score <= 1


@pytest.fixture(scope="module")
def fresh_split(tmp_path_factory):
    """Items the model never saw: its training recipe, another seed (training used 0, held-out 1)."""
    from fakelocator.training.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("fresh")
    generate(out, SynthConfig.from_dict({**json.loads(RECIPE.read_text()), "n": 40, "seed": 23}), workers=1)
    return out


def test_on_fresh_items_of_its_recipe_it_separates_fakes_and_points_at_the_manipulated_pixels(locator, fresh_split):
    from sklearn.metrics import roc_auc_score

    from fakelocator.training.samples import load_samples

    samples = load_samples(fresh_split)
    results = locator.locate([s.image for s in samples])
    labels = [int(s.kind != "real") for s in samples]
    auc = roc_auc_score(labels, [r.score for r in results])
    assert auc >= AUC_FLOOR, auc

    inside, outside = [], []
    for s, r in zip(samples, results):
        if s.kind == "partial":
            real = cv2.imread(str(s.real)).astype(np.int16)
            region = np.abs(cv2.imread(str(s.image)).astype(np.int16) - real).max(axis=2) > 8
            inside.append(r.map[region].mean())
            outside.append(r.map[~region].mean())
    assert np.mean(inside) >= REGION_CONTRAST * np.mean(outside), (np.mean(inside), np.mean(outside))


def test_the_fp16_onnx_and_the_checkpoint_agree_with_the_fp32_onnx(locator):
    pytest.importorskip("torch")
    image = cv2.imread(str(SAMPLES / "fake-mouth-000001.png"))
    reference = locator.locate(image).map
    for name, backend, bound in [("model.fp16.onnx", "onnxruntime", 1e-2), ("model.safetensors", "torch", 1e-4)]:
        with Locator.load(WEIGHTS / name, backend=backend, device="cpu") as other:
            m = other.locate(image).map
        assert np.abs(m - reference).max() <= bound, name
        coss = float((m * reference).sum() / (np.linalg.norm(m) * np.linalg.norm(reference)))
        assert coss >= 0.999, name
