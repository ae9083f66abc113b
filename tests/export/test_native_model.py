"""A model made for ``native`` analysis, end to end: trained on native crops, exported, run by the runtime.

The task is the one issue 13 is about: a period-2 pattern (a ±8 checkerboard, the trace of a
pixel-shuffle or zero-insertion upsampler) blended into part of a smooth 1024-pixel image. Resizing
1024 → 32 with half-pixel centres reads the mean of each pair of neighbouring pixels, which cancels
the pattern exactly, so ``fit`` cannot see it; ``native`` tiles show the network the pixels it was
trained on. A tiny ``unet_lite`` (width 4, 32-pixel tiles, with the high-pass stem that puts the
pattern in its first features) learns it in 40 steps, for any seed and on any CPU: without the stem,
40 steps found it for only 3 of 6 seeds (pixel AUC 0.48-0.53 for the others), and which seeds
depended on the CPU's kernels (AVX2 vs SSE4.1).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.export.parity import FP16, FP32

TILE = 32
CONTRACT = Preprocessing(height=TILE, width=TILE, analysis="native", tile_overlap=8)
STEPS = 40
AMPLITUDE = 8.0


def smooth_scene(rng, height, width) -> np.ndarray:
    """(H, W, 3) float32 0..255: bicubic-enlarged random colours plus a little sensor noise."""
    import cv2

    low = rng.uniform(0, 255, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    return image + rng.normal(0, 3, image.shape).astype(np.float32)


def blend_pattern(image: np.ndarray, box) -> np.ndarray:
    """Add the ±AMPLITUDE checkerboard inside ``box`` (x0, y0, x1, y1); returns the (H, W) ground truth."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1]
    image[y0:y1, x0:x1] += AMPLITUDE * np.where((yy + xx) % 2 == 0, 1.0, -1.0)[..., None]
    truth = np.zeros(image.shape[:2], np.float32)
    truth[y0:y1, x0:x1] = 1.0
    return truth


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def training_pool(rng, n=16, size=160):
    pool = []
    for _ in range(n):
        image = smooth_scene(rng, size, size)
        bh, bw = rng.integers(size // 4, size // 2 + 1, 2)
        y0, x0 = rng.integers(0, size - bh + 1), rng.integers(0, size - bw + 1)
        truth = blend_pattern(image, (x0, y0, x0 + bw, y0 + bh))
        pool.append((to_uint8(image), truth))
    return pool


def train_native(seed: int):
    """The network on random native crops of TILE² (image and ground truth cut identically; no resize)."""
    import torch

    from fakelocator.training.config import ModelConfig
    from fakelocator.training.model import build_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(ModelConfig(backbone="unet_lite", classifier=True, unet_width=4, highpass_stem=True,
                                    preprocessing=CONTRACT))
    pool = training_pool(rng)
    mean = torch.tensor(CONTRACT.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(CONTRACT.std).view(1, 3, 1, 1) * 255
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(STEPS):
        crops, truths = [], []
        for _ in range(16):
            image, truth = pool[rng.integers(len(pool))]
            y, x = rng.integers(0, image.shape[0] - TILE + 1, 2)
            crops.append(image[y:y + TILE, x:x + TILE, ::-1])  # BGR → the contract's RGB
            truths.append(truth[y:y + TILE, x:x + TILE])
        x = (torch.from_numpy(np.stack(crops).copy()).permute(0, 3, 1, 2).float() - mean) / std  # (16, 3, T, T)
        y = torch.from_numpy(np.stack(truths))[:, None]  # (16, 1, T, T)
        out = model(x)
        loss = torch.nn.functional.binary_cross_entropy(out["map"].clamp(1e-6, 1 - 1e-6), y) + \
            torch.nn.functional.binary_cross_entropy_with_logits(out["logit"], y.amax(dim=(2, 3)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def native_model(tmp_path_factory, train_seed):
    """(directory, torch model): the trained model as .safetensors, fp32 .onnx and fp16 .onnx."""
    import torch

    from fakelocator.export.onnx_export import export_onnx
    from fakelocator.training.checkpoint import save_weights

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train_native(train_seed)
        out = tmp_path_factory.mktemp("native-model")
        save_weights(out / "model.safetensors", model)
        # the legacy exporter: the same graph for this network, in 0.3 s instead of 14 s on 2 cores
        export_onnx(model, out / "model.onnx", exporter="legacy", check=False)  # compared below, in native
        export_onnx(model, out / "model.fp16.onnx", exporter="legacy", fp16=True, check=False)
    finally:
        torch.set_num_threads(threads)
    return out, model


def pixel_auc(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth.ravel() > 0.5, score.ravel()))


@pytest.mark.trains
def test_a_model_trained_native_localizes_a_period_2_pattern_that_fit_cannot_see(native_model):
    """Native finds the pattern; fit does not see it at all: its map of the image with the pattern is
    that of the same image without it, to within the rounding of the pattern into uint8.

    Measured over seeds 0-9 with the development machine's default kernels, with AVX2 ones
    (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2) and with SSE4.1 ones (ATEN_CPU_CAPABILITY=
    default ONEDNN_MAX_CPU_ISA=SSE41), 30 trainings: native pixel AUC 0.972-1.000; native's mean
    change inside the pattern 0.32-0.97; fit's change at most 0.4 % of native's. The bounds below
    leave room on each. (Before the high-pass stem: AUC 0.48-1.00 over seeds 0-5, the failure this
    test had on another CPU.)
    """
    from fakelocator.runtime import Locator

    out, _ = native_model
    rng = np.random.default_rng(1)
    scene = smooth_scene(rng, 1024, 1024)
    clean = to_uint8(scene)
    truth = blend_pattern(scene, (300, 400, 700, 700))
    image = to_uint8(scene)
    with Locator.load(out / "model.onnx", device="cpu", batch_size=64, threads=1, max_tiles=None) as loc:
        assert loc.contract.analysis == "native", "a model made for native runs native by default"
        native, native_clean = loc.locate([image, clean])
    with Locator.load(out / "model.onnx", device="cpu", threads=1, analysis="fit") as loc:
        fit, fit_clean = loc.locate([image, clean])
    assert native.tiles == 43 * 43 and fit.tiles == 1
    assert pixel_auc(truth, native.map) >= 0.9, pixel_auc(truth, native.map)
    inside = truth > 0.5
    native_change = np.abs(native.map - native_clean.map)[inside].mean()
    fit_change = np.abs(fit.map - fit_clean.map)[inside].mean()
    assert native_change > 0.15, native_change
    assert fit_change < 0.05 * native_change, (fit_change, native_change)


@pytest.mark.trains
def test_onnx_fp32_fp16_and_torch_agree_in_native(native_model):
    from fakelocator.runtime import Locator

    out, _ = native_model
    rng = np.random.default_rng(2)
    image = smooth_scene(rng, 150, 230)
    blend_pattern(image, (40, 30, 130, 110))
    image = to_uint8(image)
    results = {}
    for name in ("model.safetensors", "model.onnx", "model.fp16.onnx"):
        with Locator.load(out / name, device="cpu", threads=1) as loc:
            assert loc.contract == CONTRACT
            results[name] = loc.locate(image)
    torch_result = results["model.safetensors"]
    for name, bounds in (("model.onnx", FP32), ("model.fp16.onnx", FP16)):
        r = results[name]
        assert r.tiles == torch_result.tiles == 6 * 10
        # stitching is a convex blend of tile maps, so it keeps the tile maps' bound
        assert np.abs(r.map - torch_result.map).max() <= bounds.map_max_abs, name
        assert abs(r.score - torch_result.score) <= bounds.score_max_abs, name


@pytest.mark.trains
def test_metadata_round_trip_keeps_the_analysis(native_model, tmp_path):
    import onnx

    from fakelocator.runtime.engine_sidecar import EngineSidecar, sidecar_path
    from fakelocator.metadata import PREPROCESSING_KEY
    from fakelocator.training.checkpoint import load_model
    from fakelocator.training.config import ModelConfig

    out, model = native_model
    loaded, _ = load_model(out / "model.safetensors")
    assert loaded.config.preprocessing == CONTRACT
    assert ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict()))).preprocessing == CONTRACT  # .pt checkpoints
    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx"), load_external_data=False).metadata_props}
    assert Preprocessing.from_json(props[PREPROCESSING_KEY]) == CONTRACT
    assert json.loads(props[PREPROCESSING_KEY])["analysis"] == "native"
    fields = {f for f in EngineSidecar.__dataclass_fields__}
    assert "preprocessing" in fields
    engine = tmp_path / "model.engine"
    sidecar = _sidecar(EngineSidecar, preprocessing=CONTRACT.to_dict())
    sidecar.write(sidecar_path(engine))
    assert Preprocessing.from_dict(EngineSidecar.read(sidecar_path(engine)).preprocessing) == CONTRACT


def _sidecar(cls, **changes):
    from fakelocator.runtime.engine_sidecar import BuildOptions, ShapeProfile

    base = dict(
        tensorrt_version="10.9.0", gpu_name="GPU", compute_capability=(9, 0), precision="fp16", strongly_typed=True,
        profiles=(ShapeProfile("image", (1, 3, TILE, TILE), (32, 3, TILE, TILE), (64, 3, TILE, TILE)),),
        onnx_path="model.onnx", onnx_sha256="0" * 64, engine_sha256="1" * 64, preprocessing={}, model_config={},
        provenance={}, fakelocator_version="test", options=BuildOptions(batch=(1, 32, 64)),
    )
    base.update(changes)
    return cls(**base)


def test_an_old_model_loads_as_fit():
    from pathlib import Path

    import onnx

    from fakelocator.metadata import PREPROCESSING_KEY
    from fakelocator.runtime import Locator

    legacy = Path(__file__).resolve().parents[1] / "data" / "legacy_fit_model.onnx"
    props = {p.key: p.value for p in onnx.load(str(legacy), load_external_data=False).metadata_props}
    assert "analysis" not in json.loads(props[PREPROCESSING_KEY]), "saved before the field existed"
    with Locator.load(legacy, device="cpu", threads=1) as loc:
        assert loc.info.preprocessing.analysis == "fit" and loc.contract.analysis == "fit"
        result = loc.locate(np.zeros((300, 500, 3), np.uint8))
    assert result.tiles == 1 and "upsample" in result.timings and "stitch" not in result.timings


@pytest.mark.trains
def test_export_engine_builds_the_tile_profile_and_the_sidecar_keeps_the_analysis(native_model, fake_trt, tmp_path, capsys):
    """API-contract test with the fake TensorRT (tests/export/fake_gpu.py): batch-only dynamic, the tile's H × W."""
    from fakelocator.cli import main
    from fakelocator.export.engine_spec import NATIVE_BATCH
    from fakelocator.runtime.engine_sidecar import EngineSidecar, sidecar_path

    out, _ = native_model
    _, state, _ = fake_trt
    engine = tmp_path / "native.engine"
    assert main(["export", "engine", str(out / "model.onnx"), "-o", str(engine), "--no-check"]) == 0
    assert state.find("set_shape") == [("set_shape", "image", (1, 3, TILE, TILE), (32, 3, TILE, TILE), (64, 3, TILE, TILE))]
    sidecar = EngineSidecar.read(sidecar_path(engine))
    assert sidecar.profile.batch == NATIVE_BATCH and sidecar.options.batch == NATIVE_BATCH
    assert Preprocessing.from_dict(sidecar.preprocessing) == CONTRACT
    assert main(["export", "engine", str(out / "model.onnx"), "-o", str(engine), "--no-check", "--overwrite", "--hw", "64x64"]) != 0
    assert "native analysis" in capsys.readouterr().err


@pytest.mark.trains
def test_triton_configs_declare_the_analysis(native_model, tmp_path):
    from fakelocator.export.triton import write_repository
    from fakelocator.metadata import PREPROCESSING_KEY

    out, _ = native_model
    repo = write_repository(out / "model.onnx", tmp_path / "repo")
    config = next(repo.rglob("config.pbtxt")).read_text()
    assert PREPROCESSING_KEY in config and '\\"analysis\\": \\"native\\"' in config
