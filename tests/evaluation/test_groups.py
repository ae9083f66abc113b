"""Grouping per manipulation family, per image-size bucket, and held-out vs seen families."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation import baselines as B
from fakelocator.evaluation import groups as G
from fakelocator.evaluation.runner import EvalSettings, evaluate
from fakelocator.training.samples import Sample, load_samples


@pytest.mark.parametrize("h, w, bucket", [
    (100, 256, "≤256"), (256, 256, "≤256"), (257, 100, "257–512"), (512, 512, "257–512"),
    (300, 513, "513–1024"), (1024, 768, "513–1024"), (1025, 10, ">1024"), (1080, 1920, ">1024"),
    (None, None, None), (0, 5, None),
])
def test_size_buckets_on_the_long_side(h, w, bucket):
    assert G.size_bucket(h, w) == bucket


@pytest.mark.parametrize("text, family", [
    ("transposed_conv2(k4,s2)", "transposed_conv"), ("nearest", "nearest"), ("bilinear3", "bilinear"),
    ("unpool_ac(x)", "unpool"), ("pixel_shuffle", "pixel_shuffle"),
])
def test_upsampler_names_lose_parameters_and_numbering(text, family):
    assert G.normalize_upsampler(text) == family


def test_parse_families():
    assert G.parse_families("a, b,a") == ("a", "b")
    assert G.parse_families(None) == () and G.parse_families("") == ()
    with pytest.raises(FakeLocatorError, match="empty family name"):
        G.parse_families("a,,b")


def _manifest(root: Path, header: str, rows: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.csv").write_text(header + "\n" + "\n".join(rows) + "\n")


def test_family_from_the_family_column_then_the_upsampler_then_the_property(tmp_path):
    G._manifest.cache_clear()
    a = tmp_path / "a"
    _manifest(a, "image,real,kind,property,upsampler,family",
              ["f1.png,r.png,partial,mouth,nearest,self_blend", "f2.png,r.png,partial,eyes,bicubic2(k3),"])
    b = tmp_path / "b"
    _manifest(b, "image,real,kind,property", ["f3.png,r.png,partial,hair"])
    assert G.family_of(Sample(a / "f1.png", "partial", real=a / "r.png", property="mouth", root=a)) == "self_blend"
    assert G.family_of(Sample(a / "f2.png", "partial", real=a / "r.png", property="eyes", root=a)) == "bicubic"
    assert G.family_of(Sample(b / "f3.png", "partial", real=b / "r.png", property="hair", root=b)) == "hair"
    assert G.family_of(Sample(tmp_path / "x.png", "entire", property="entire", root=tmp_path)) == "entire"  # no manifest
    assert G.family_of(Sample(a / "r.png", "real", root=a)) == "real"


def _record(label, score, family="", h=100, w=100, coss=math.nan, prior=None):
    return {"label": label, "score": score, "family": family, "size_bucket": G.size_bucket(h, w), "coss": coss,
            "prior": prior, "kind": "partial" if label else "real"}


def test_group_rows_count_accuracy_auc_and_constant_coss():
    gt = np.zeros((20, 20))
    gt[5:10, 5:10] = 0.5
    stats = B.prior_stats(gt, 0.1)
    choice = {"value": 0.1, "scale": 0.11, "area": 0.06}
    records = [
        _record(0, 0.1), _record(0, 0.6), _record(0, 0.2, h=600, w=400),
        _record(1, 0.9, "a", coss=0.8, prior=stats), _record(1, 0.4, "a", coss=0.6, prior=stats),
        _record(1, 0.7, "b", h=2000, w=1000, coss=0.5, prior=stats),
    ]
    fam = {r["name"]: r for r in G.family_rows(records, choice, 0.5)}
    assert set(fam) == {"a", "b"}
    assert fam["a"]["n"] == 2 and fam["a"]["acc"] == 0.5
    # a's fakes 0.9, 0.4 against the reals 0.1, 0.6, 0.2: 5 of 6 pairs ordered.
    assert fam["a"]["auc"] == pytest.approx(5 / 6)
    assert fam["a"]["coss"] == pytest.approx(0.7)
    assert fam["a"]["const_coss"] == pytest.approx(stats["const_coss"])
    assert fam["a"]["coss_ratio"] == pytest.approx(0.7 / stats["const_coss"])
    assert fam["a"]["centred_coss"] == pytest.approx(stats["blob"]["0.11"]["coss"])

    size = {r["name"]: r for r in G.size_rows(records, choice, 0.5)}
    assert list(size) == ["≤256", "513–1024", ">1024"]
    small = size["≤256"]
    assert (small["n"], small["n_fake"], small["n_real"]) == (4, 2, 2)
    assert small["acc"] == pytest.approx(2 / 4)  # 0.1 real ✓, 0.6 real ✗, 0.9 fake ✓, 0.4 fake ✗
    assert small["auc"] == pytest.approx(3 / 4)  # fakes of the bucket against its own reals
    assert math.isnan(size[">1024"]["auc"])  # no real image of that size


def test_held_out_rows(tmp_path):
    records = [_record(0, 0.1), _record(1, 0.9, "a", coss=0.9), _record(1, 0.8, "b", coss=0.5), _record(1, 0.3, "c", coss=0.1)]
    choice = {"value": 0.1, "scale": 0.11, "area": 0.06}
    rows = G.held_out_rows(records, ("b", "c", "zzz"), choice, 0.5)
    assert [(r["group"], r["name"], r["n"]) for r in rows] == [
        ("held-out family", "b", 1), ("held-out family", "c", 1), ("held-out family", "zzz", 0),
        ("held out, all", "b, c, zzz", 2), ("seen, all", "a", 1),
    ]
    assert rows[3]["acc"] == 0.5 and rows[4]["acc"] == 1.0
    assert G.held_out_rows(records, (), choice, 0.5) == []


def test_evaluate_reports_families_sizes_held_out_and_baselines(tmp_path, locator, by_hand):
    root = by_hand.make_dataset(tmp_path / "d", n_pairs=4, n_entire=1, manifest=True)
    lines = (root / "manifest.csv").read_text().splitlines()
    fam = {"mouth": "warp", "eyes": "blend", "entire": "gan"}
    rows = [lines[0] + ",family"] + [line + "," + fam.get(line.split(",")[3], "") for line in lines[1:]]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    G._manifest.cache_clear()
    e = evaluate(locator, load_samples(root), EvalSettings(held_out_families=("blend",)))
    names = {(r["group"], r["name"]) for r in e.groups}
    assert {("family", "warp"), ("family", "blend"), ("family", "gan"), ("size", "≤256"),
            ("held-out family", "blend"), ("held out, all", "blend"), ("seen, all", "gan, warp")} <= names
    assert {r["family"] for r in e.records} == {"real", "warp", "blend", "gan"}
    # The constant map's COSS over the manipulated images, by hand: ΣG / (√N ‖G‖) per image, averaged.
    from fakelocator.training.groundtruth import partial_manipulation_map
    from fakelocator.training.samples import read_image

    want, zero_psnr = [], []
    for s in load_samples(root):
        if s.kind == "real":
            continue
        image = read_image(s.image)
        g = partial_manipulation_map(read_image(s.real), image).astype(np.float64) if s.kind == "partial" else np.ones(image.shape[:2])
        want.append(g.sum() / (math.sqrt(g.size) * np.linalg.norm(g)))
        zero_psnr.append(10 * math.log10(1 / np.mean(g ** 2)))
    got = e.baselines["subsets"]["manipulated"]
    assert got["constant"]["coss"] == pytest.approx(np.mean(want), rel=1e-6)
    assert got["zero"]["coss"] == 0.0 and got["zero"]["psnr"] == pytest.approx(np.mean(zero_psnr), rel=1e-6)
    assert got["n"] == 5 and got["model"]["coss"] == pytest.approx(e.metrics["coss"], rel=1e-9)
    assert got["coss_ratio"] == pytest.approx(e.metrics["coss"] / np.mean(want), rel=1e-6)
    assert e.baselines["scale"] in B.BLOB_SCALES and 0 < e.baselines["value"] < 1
    assert set(e.baselines["subsets"]) == {"manipulated", "partial", "entire"}
    assert 0.99 < e.metrics["pixel_auc"] <= 1.0  # the red model finds the red patches
    assert all(r["height"] and r["width"] for r in e.records)


def test_held_out_families_must_be_names_not_a_string():
    with pytest.raises(FakeLocatorError, match="sequence of names"):
        EvalSettings(held_out_families="a,b")
