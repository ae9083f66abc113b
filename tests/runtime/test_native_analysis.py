"""``native`` analysis in the runtime: tiles of many images in one batch, maps stitched, scores pooled.

The reference is written out here from the contract's own functions (``to_network_tiles`` → the
model on ONNX Runtime → ``fakelocator.tiling.stitch`` → clip, ``pool_scores``); the pipeline must
give the same maps and scores whatever the batching. The red model (conftest.py) has 32 × 32 inputs.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from fakelocator.contract import Preprocessing, to_network_tiles
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import Locator
from fakelocator.runtime.pipeline import sub_grids
from fakelocator.runtime.preprocess import NumpyPreprocessor, numpy_stitch, numpy_tiles, stitch_of, tiles_of
from fakelocator.tiling import TileGrid, pool_scores, stitch

OVERLAP = 8
TOL = 1e-6  # same arithmetic, but ONNX Runtime may pick other kernels for other batch sizes


NATIVE = Preprocessing(height=32, width=32, analysis="native", tile_overlap=OVERLAP)


def native_model(source, path, **contract):
    """A copy of the red model ``source`` at ``path``, saved with a ``native`` contract."""
    import onnx

    model = onnx.load(str(source))
    native = Preprocessing(height=32, width=32, analysis="native", tile_overlap=OVERLAP, **contract)
    for prop in model.metadata_props:
        if prop.key == "fakelocator.preprocessing":
            prop.value = native.to_json()
    onnx.save(model, str(path))
    return path


def reference(model_path, image_bgr, contract):
    """(map, score, tiles) of one BGR image by the contract's functions, one ONNX Runtime call per image."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    x, grid = to_network_tiles(image_bgr, contract, "BGR")
    maps, scores = session.run(["map", "score"], {"image": x})
    full = np.clip(stitch(maps[:, 0], grid, contract.tile_window), 0.0, 1.0)
    return full, pool_scores(scores[:, 0], contract.tile_pooling), len(grid)


def images(rng):
    """Sizes around the tile: 1 × 1, a thin strip, one tile exactly, one more than a tile, a larger one."""
    sizes = [(1, 1), (17, 900), (32, 32), (33, 31), (120, 75), (64, 200)]
    out = []
    for h, w in sizes:
        im = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        im[h // 3: h // 2 + 1, w // 4: w // 2 + 1] = (0, 0, 255)  # a red patch: the map is high there
        out.append(im)
    return out


@pytest.fixture(scope="module")
def red_native(tmp_path_factory, red_model):
    return native_model(red_model, tmp_path_factory.mktemp("native") / "red-native.onnx")


def test_a_model_made_for_native_runs_native_and_fit_models_run_fit(red_model, red_native):
    with Locator.load(red_native, device="cpu") as loc:
        assert loc.contract.analysis == "native" and loc.contract.tile_overlap == OVERLAP
        assert loc.info.preprocessing.analysis == "native"
    with Locator.load(red_native, device="cpu", analysis="fit") as loc:
        assert loc.contract.analysis == "fit"
    with Locator.load(red_model, device="cpu") as loc:
        assert loc.contract.analysis == "fit"
    with Locator.load(red_model, device="cpu", analysis="native", tile_overlap=4, tile_pooling="top2") as loc:
        assert (loc.contract.analysis, loc.contract.tile_overlap, loc.contract.tile_pooling) == ("native", 4, "top2")
        assert "analysis='native'" in repr(loc)


def test_bad_analysis_options_are_clear_errors(red_model):
    with pytest.raises(FakeLocatorError, match="analysis must be one of"):
        Locator.load(red_model, device="cpu", analysis="tiles")
    with pytest.raises(FakeLocatorError, match="tile_overlap"):
        Locator.load(red_model, device="cpu", analysis="native", tile_overlap=16)  # half the 32-pixel tile
    with pytest.raises(FakeLocatorError, match="tile_pooling must be one of"):
        Locator.load(red_model, device="cpu", analysis="native", tile_pooling="median")
    with pytest.raises(FakeLocatorError, match="max_tiles"):
        Locator.load(red_model, device="cpu", analysis="native", max_tiles=0)


@pytest.mark.parametrize("size", [(1, 1), (17, 900), (1080, 1920)])
def test_native_equals_the_reference_tiles_model_stitch(red_native, size):
    rng = np.random.default_rng(size[0])
    image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    image[size[0] // 4: size[0] // 2 + 1, size[1] // 3: size[1] // 2 + 1] = (0, 0, 255)
    with Locator.load(red_native, device="cpu", min_side=1, batch_size=8, workers=2, threads=1, max_tiles=None,
                      preprocessor="numpy") as loc:
        result = loc.locate(image)
        contract = loc.contract
    full, score, n = reference(red_native, image, contract)
    assert result.map.shape == size and result.map.dtype == np.float32
    np.testing.assert_allclose(result.map, full, rtol=0, atol=TOL)
    assert result.score == pytest.approx(score, abs=TOL)
    assert result.tiles == n == len(TileGrid.of(*size, 32, 32, OVERLAP))
    assert set(result.timings) >= {"decode", "tile", "infer", "stitch"} and "upsample" not in result.timings
    if size == (1080, 1920):
        assert result.map[size[0] // 3, size[1] * 5 // 12] > 0.9 and result.map[5, 5] < 0.5


def test_tiles_of_many_images_share_batches_and_give_the_same_results(red_native):
    rng = np.random.default_rng(3)
    inputs = images(rng)
    with Locator.load(red_native, device="cpu", min_side=1, batch_size=5, workers=2, threads=1, preprocessor="numpy") as loc:
        together = loc.locate(inputs)
    with Locator.load(red_native, device="cpu", min_side=1, batch_size=1, workers=1, threads=1, preprocessor="numpy") as loc:
        alone = [loc.locate(im) for im in inputs]
    for im, a, b in zip(inputs, together, alone):
        full, score, n = reference(red_native, im, NATIVE)
        np.testing.assert_allclose(a.map, b.map, rtol=0, atol=TOL)
        np.testing.assert_allclose(a.map, full, rtol=0, atol=TOL)
        assert a.score == pytest.approx(b.score, abs=TOL) and a.score == pytest.approx(score, abs=TOL)
        assert a.tiles == b.tiles == n
    assert sum(r.tiles for r in together) % 5 != 0, "some batch mixes tiles of two images or is partial"


def test_a_static_batch_model_gets_padded_tile_batches(tmp_path, build_red_model, red_native):
    static = native_model(build_red_model(tmp_path / "static.onnx", batch=4), tmp_path / "static-native.onnx")
    rng = np.random.default_rng(5)
    inputs = images(rng)
    with Locator.load(static, device="cpu", min_side=1, batch_size=4, workers=1, threads=1) as loc:
        assert loc.backend.fixed_batch == 4
        got = loc.locate(inputs)
    for im, r in zip(inputs, got):
        full, score, n = reference(red_native, im, NATIVE)  # the same network with a dynamic batch
        np.testing.assert_allclose(r.map, full, rtol=0, atol=TOL)
        assert r.score == pytest.approx(score, abs=TOL) and r.tiles == n


def test_over_the_tile_budget_is_an_error_record_not_a_downscale(red_native):
    big = np.zeros((100, 100, 3), np.uint8)  # 4 × 4 tiles of 32 with overlap 8
    small = np.zeros((30, 30, 3), np.uint8)  # one tile
    with Locator.load(red_native, device="cpu", max_tiles=15) as loc:
        results = loc.locate([big, small], on_error="record")
        with pytest.raises(Exception, match="16 tiles"):
            loc.locate(big)
    assert results[0].error == ("too large for native analysis: 100x100 pixels take 16 tiles of 32x32, more than the "
                                "tile budget of 15 (raise --max-tiles / max_tiles, or use --analysis fit)")
    assert results[0].map is None and results[0].tiles is None and results[0].to_record()["tiles"] is None
    assert results[1].ok and results[1].tiles == 1
    with Locator.load(red_native, device="cpu", max_tiles=16) as loc:
        assert loc.locate(big).tiles == 16
    with Locator.load(red_native, device="cpu", max_tiles=1, analysis="fit") as loc:
        assert loc.locate(big).tiles == 1, "the budget is native's: fit takes one input per crop"


def test_face_crops_are_tiled_and_pasted_back(red_native):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (150, 260, 3), dtype=np.uint8)
    image[20:60, 30:100] = (0, 0, 255)
    boxes = [(10, 10, 120, 90), (150, 40, 170, 140)]  # 110 × 80: 5 × 3 tiles; 20 × 100: 1 × 4 tiles
    with Locator.load(red_native, device="cpu", batch_size=3, regions=lambda im, order, i: boxes) as loc:
        result = loc.locate(image)
        contract = loc.contract
    expected = np.zeros((150, 260), np.float32)
    scores, tiles = [], 0
    for x0, y0, x1, y1 in boxes:
        full, score, n = reference(red_native, np.ascontiguousarray(image[y0:y1, x0:x1]), contract)
        np.maximum(expected[y0:y1, x0:x1], full, out=expected[y0:y1, x0:x1])
        scores.append(score)
        tiles += n
    np.testing.assert_allclose(result.map, expected, rtol=0, atol=TOL)
    assert [r.score for r in result.regions] == pytest.approx(scores, abs=TOL)
    assert result.score == pytest.approx(max(scores), abs=TOL)
    assert result.tiles == tiles == 15 + 4


def test_keep_outputs_gives_the_tiles_outputs(red_native):
    image = np.zeros((40, 70, 3), np.uint8)
    with Locator.load(red_native, device="cpu") as loc:
        r = loc.locate(image, keep_outputs=True)
    assert r.outputs["tile_maps"].shape == (r.tiles, 32, 32) and r.outputs["tile_scores"].shape == (r.tiles,)
    assert r.outputs["features"].shape == (3,)


def test_tile_pooling_rules(red_native):
    image = np.zeros((32, 130, 3), np.uint8)  # 1 × 6 tiles; a red patch in the first only
    image[5:15, 2:8] = (0, 0, 255)
    got = {}
    for rule in ("max", "mean", "top2"):
        with Locator.load(red_native, device="cpu", tile_pooling=rule) as loc:
            got[rule] = loc.locate(image, keep_outputs=True)
    s = np.sort(got["max"].outputs["tile_scores"])[::-1]
    assert got["max"].score == pytest.approx(s[0]) and got["mean"].score == pytest.approx(s.mean())
    assert got["top2"].score == pytest.approx(s[:2].mean())
    assert got["max"].score > got["top2"].score > got["mean"].score


def test_sub_grids_cover_a_range_of_tiles_in_order():
    grid = TileGrid.of(100, 150, 32, 32, OVERLAP)  # 4 rows × 6 columns
    boxes = grid.boxes()
    for start, count in [(0, 24), (0, 1), (5, 2), (3, 9), (6, 12), (7, 17), (23, 1)]:
        parts = sub_grids(grid, start, count)
        assert len(parts) <= 3
        assert [b for g in parts for b in g.boxes()] == boxes[start:start + count]


def test_preprocessors_without_tiles_or_stitch_fall_back_to_numpy():
    class Old:
        name = "old"

    assert tiles_of(Old()) is numpy_tiles and stitch_of(Old()) is numpy_stitch
    pre = NumpyPreprocessor()
    assert tiles_of(pre) == pre.tiles and stitch_of(pre) == pre.stitch
    contract = Preprocessing(height=32, width=32, analysis="native", tile_overlap=OVERLAP)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    grid = TileGrid.of(50, 70, 32, 32, OVERLAP)
    out = np.empty((len(grid), 3, 32, 32), np.float32)
    assert pre.tiles(image, grid, "BGR", contract, out) is out
    np.testing.assert_array_equal(out, to_network_tiles(image, contract, "BGR")[0])
    maps = np.full((len(grid), 32, 32), 1.0, np.float32)
    full = pre.stitch(maps, grid, "linear")
    assert full.shape == (50, 70) and full.max() <= 1.0 and full.min() > 1.0 - 1e-6


def test_records_and_the_cli_carry_tiles_and_the_analysis(red_model, tmp_path, capsys):
    import cv2

    from fakelocator.runtime.cli import main

    images_dir = tmp_path / "in"
    images_dir.mkdir()
    cv2.imwrite(str(images_dir / "a.png"), np.zeros((40, 70, 3), np.uint8))  # 2 × 3 tiles
    cv2.imwrite(str(images_dir / "b.png"), np.zeros((100, 100, 3), np.uint8))  # 16 tiles: over the budget
    out = tmp_path / "out"
    code = main([str(images_dir), "--out", str(out), "--model", str(red_model), "--device", "cpu", "--analysis", "native",
                 "--tile-overlap", "8", "--tile-pooling", "mean", "--max-tiles", "10", "--quiet"])
    assert code == 1
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert records["a.png"]["tiles"] == 6 and records["a.png"]["error"] is None
    assert {"tile", "stitch", "write"} <= set(records["a.png"]["timings_ms"])
    assert records["b.png"]["tiles"] is None and "16 tiles" in records["b.png"]["error"]
    assert "native analysis" in capsys.readouterr().err
    out2 = tmp_path / "out2"
    assert main([str(images_dir), "--out", str(out2), "--model", str(red_model), "--device", "cpu", "--quiet"]) == 0
    assert all(json.loads(line)["tiles"] == 1 for line in (out2 / "results.jsonl").read_text().splitlines())


def test_native_is_not_a_reason_to_leave_the_device_path(red_native, caplog):
    # The device path runs native analysis (tests/runtime/test_device_spec.py); on a CPU backend
    # the reason it is not taken is the CPU, not the analysis.
    from fakelocator.runtime.device_pipeline import choose_pipeline

    with Locator.load(red_native, device="cpu") as loc:
        backend = loc.backend
        with caplog.at_level(logging.DEBUG, logger="fakelocator"):
            spec, path = choose_pipeline(backend, "auto", loc.spec)
            assert (spec.pipeline, path, spec.contract.analysis) == ("host", None, "native")
        with pytest.raises(FakeLocatorError, match="runs on cpu"):
            choose_pipeline(backend, "device", loc.spec)
    assert not any("native analysis" in r.getMessage() for r in caplog.records)


def test_the_analysis_picture_script_renders_fit_and_native_side_by_side(red_native, tmp_path):
    import subprocess
    from pathlib import Path

    import cv2

    pytest.importorskip("skimage")
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "picture.png"
    proc = subprocess.run([str(root / "scripts" / "analysis-picture"), str(red_native), str(out), "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("fit: ") and "tiles 1," in lines[0] and "pixel AUC" in lines[0]
    assert lines[1].startswith("native: ") and f"tiles {len(TileGrid.of(400, 600, 32, 32, OVERLAP))}," in lines[1]
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] > 3 * 400


def test_the_native_preprocessor_cuts_a_part_of_a_grid_like_the_reference():
    """An image whose tiles span two batches is cut in parts (``pipeline.sub_grids``); the native
    kernels lay out whole grids, so a part must still come out as the reference's tiles."""
    from dataclasses import replace

    from fakelocator.runtime.preprocess import NumpyPreprocessor, select_preprocessor
    from fakelocator.tiling import TileGrid

    pre = select_preprocessor("auto")
    contract = Preprocessing(64, 64, analysis="native", tile_overlap=8)
    image = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    full = TileGrid.of(150, 200, 64, 64, 8)
    part = replace(full, ys=full.ys[1:2], xs=full.xs[1:])
    got = pre.tiles(image, part, "BGR", contract, np.empty((len(part), 3, 64, 64), np.float32))
    want = NumpyPreprocessor().tiles(image, part, "BGR", contract, np.empty((len(part), 3, 64, 64), np.float32))
    np.testing.assert_allclose(got, want, atol=1e-6)
