"""``generate`` and ``fakelocator synth``: the shared dataset format, determinism, photos, the CLI."""

import csv
import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from fakelocator.cli import main
from fakelocator.errors import FakeLocatorError
from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.synth import COLUMNS, SynthConfig, collect_photos, generate, item_kinds, read_rgb

SMALL = dict(size_range=(224, 288), aspect_range=(0.8, 1.25))


def _write_photo(path: Path, seed: int, h: int = 300, w: int = 340) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 5.0)
    x = (x - x.min()) / (x.max() - x.min())
    img = np.clip(np.rint(30 + 190 * x + rng.normal(0, 4, x.shape)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), img)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    (d / "nested").mkdir()
    _write_photo(d / "a.png", 0)
    _write_photo(d / "nested" / "b.jpg", 1, 320, 300)
    _write_photo(d / "tiny.png", 2, 100, 120)  # smaller than a model input: skipped with a note
    (d / "broken.png").write_bytes(b"not an image")
    return d


def _config(photo_dir, **kw) -> SynthConfig:
    fields = dict(photos=(str(photo_dir),), bundled_photos=False, detect_faces=False, **SMALL)
    return SynthConfig(**{**fields, **kw})


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_generate_writes_the_shared_dataset_format(tmp_path, photo_dir):
    cfg = _config(photo_dir, n=10, seed=3)
    summary = generate(tmp_path, cfg, workers=1)
    rows = _manifest(tmp_path)
    assert list(rows[0])[:4] == ["image", "real", "kind", "property"] and list(rows[0]) == list(COLUMNS)
    listed = {r["image"] for r in rows}
    on_disk = {str(p.relative_to(tmp_path)) for d in ("real", "fake", "entire") for p in (tmp_path / d).iterdir()}
    assert listed == on_disk
    kinds = {r["kind"] for r in rows}
    assert kinds == {"real", "partial", "entire"}
    for r in rows:
        image = read_rgb(tmp_path / r["image"])
        assert 224 <= image.shape[0] <= 288 and 224 <= image.shape[1] <= 288
        if r["kind"] == "partial":
            assert r["image"].startswith("fake/") and r["real"] == "real/" + r["image"][len("fake/"):]
            assert read_rgb(tmp_path / r["real"]).shape == image.shape
            assert r["property"] and r["upsampler"] and float(r["ceiling_coss"]) > 0.5
            gt = partial_manipulation_map(read_rgb(tmp_path / r["real"]), image)  # lossless files: Eq. 7 as made
            assert float(gt.mean()) == pytest.approx(float(r["gt_mean"]), abs=1e-4)
        elif r["kind"] == "entire":
            assert r["image"].startswith("entire/") and r["real"] == "" and r["property"] == "entire"
        else:
            assert r["image"].startswith("real/") and r["real"] == "" and r["property"] == ""
        assert r["photo"] in ("user:a", "user:nested/b")
    record = json.loads((tmp_path / "synth.json").read_text())
    assert SynthConfig.from_dict(record["config"]) == cfg
    assert {p["name"] for p in record["photos"]} == {"user:a", "user:nested/b"}
    assert any("tiny.png" in n for n in record["photos_skipped"]) and any("broken.png" in n for n in record["photos_skipped"])
    assert summary.images == {k: sum(r["kind"] == k for r in rows) for k in ("real", "partial", "entire")}


def test_the_same_seed_gives_the_same_bytes_for_any_worker_count(tmp_path, photo_dir):
    cfg = _config(photo_dir, n=6, seed=11)
    generate(tmp_path / "one", cfg, workers=1)
    generate(tmp_path / "again", cfg, workers=1)
    generate(tmp_path / "two", cfg, workers=2)
    generate(tmp_path / "other", _config(photo_dir, n=6, seed=12), workers=1)
    one = _digests(tmp_path / "one")
    assert one == _digests(tmp_path / "again") == _digests(tmp_path / "two")
    other = _digests(tmp_path / "other")
    assert other["manifest.csv"] != one["manifest.csv"]


def test_a_longer_run_starts_with_the_same_items(tmp_path, photo_dir):
    generate(tmp_path / "short", _config(photo_dir, n=3, seed=5), workers=1)
    generate(tmp_path / "long", _config(photo_dir, n=5, seed=5), workers=1)
    short, long = _digests(tmp_path / "short"), _digests(tmp_path / "long")
    images = [k for k in short if k.endswith(".png")]
    assert images and all(short[k] == long[k] for k in images)


def test_item_kinds_follow_the_fractions_in_every_prefix():
    fractions = {"partial": 0.7, "entire": 0.15, "real": 0.15}
    kinds = item_kinds(2000, 0, fractions)
    for n in (20, 200, 2000):
        for k, f in fractions.items():
            assert abs(kinds[:n].count(k) / n - f) < 0.06
    assert item_kinds(50, 0, fractions) == kinds[:50]
    assert item_kinds(50, 1, fractions) != kinds[:50]


def test_nothing_is_downloaded(tmp_path, photo_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    generate(tmp_path, _config(photo_dir, n=3, seed=0, bundled_photos=True), workers=1)
    assert len(_manifest(tmp_path)) >= 3


def test_an_existing_dataset_is_replaced_only_when_asked(tmp_path, photo_dir):
    cfg = _config(photo_dir, n=2)
    generate(tmp_path, cfg, workers=1)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FakeLocatorError, match="--overwrite"):
        generate(tmp_path, cfg, workers=1)
    generate(tmp_path, _config(photo_dir, n=3), workers=1, overwrite=True)
    assert len({r["index"] for r in _manifest(tmp_path)}) == 3
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bundled_photos_come_from_installed_packages_with_their_licences():
    pytest.importorskip("skimage")
    photos, notes = collect_photos()
    names = {p.name for p in photos}
    assert "skimage:astronaut" in names
    for p in photos:
        assert Path(p.path).is_file() and p.license and min(p.height, p.width) >= 224
    astronaut = next(p for p in photos if p.name == "skimage:astronaut")
    assert astronaut.faces and astronaut.faces_from == "catalogue"


def test_the_face_detector_finds_the_catalogued_astronaut_face():
    pytest.importorskip("skimage")
    from fakelocator.training.synth.faces import detect_faces
    from fakelocator.training.synth.photos import BUNDLED, bundled_photos

    photo = next(p for p in bundled_photos()[0] if p.name == "skimage:astronaut")
    found = detect_faces(read_rgb(photo.path))
    (x, y, w, h), = next(b.faces for b in BUNDLED if b.resource.endswith("astronaut.png"))
    fx, fy, fw, fh = found[0]
    inter = max(0, min(x + w, fx + fw) - max(x, fx)) * max(0, min(y + h, fy + fh) - max(y, fy))
    assert inter / (w * h + fw * fh - inter) > 0.5


def test_config_round_trips_and_rejects_nonsense():
    cfg = SynthConfig(n=5, photos=("a",), gan_scale=(0.7, 1.1))
    assert SynthConfig.from_dict(json.loads(cfg.to_json())) == cfg
    shuffled = SynthConfig(region_weights={"nose": 1, "blob": 2, "eyes": 3})
    assert list(shuffled.region_weights) == ["blob", "eyes", "nose"], "draws must not depend on key order"
    with pytest.raises(FakeLocatorError, match="gan_scale"):
        SynthConfig(gan_scale=(1.2, 0.5))
    with pytest.raises(FakeLocatorError, match="unknown keys"):
        SynthConfig(family_weights={"lanczos": 1.0})
    with pytest.raises(FakeLocatorError, match="unknown fields"):
        SynthConfig.from_dict({"colour": 1})
    with pytest.raises(FakeLocatorError, match="no photos"):
        SynthConfig(bundled_photos=False)


def test_the_cli_makes_a_dataset_and_a_contact_sheet(tmp_path, photo_dir, capsys):
    out = tmp_path / "data"
    rc = main(["synth", str(out), "--n", "4", "--seed", "2", "--workers", "1", "--sizes", "224", "256",
               "--photos", str(photo_dir), "--no-bundled", "--sheet", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr()
    assert "images/s" in printed.out and "tiny.png" in printed.err
    assert (out / "examples.png").is_file() and len(_manifest(out)) >= 4
    assert json.loads((out / "synth.json").read_text())["config"]["size_range"] == [224, 256]
    again = tmp_path / "again"
    assert main(["synth", str(again), "--config", str(out / "synth.json"), "--workers", "1", "--quiet"]) == 0
    assert _digests(again)["manifest.csv"] == _digests(out)["manifest.csv"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--photos", str(tmp_path / "missing"), "--no-bundled"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing" in err and "not a directory" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:  # argparse's own usage error
        main(["synth", str(tmp_path / "y"), "--fractions", "partial=lots"])
    assert e.value.code == 2


def test_cli_help_describes_the_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["synth", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ("OUT", "--photos", "--seed", "--workers", "upsampling", "manifest.csv"):
        assert word in text


def test_synth_then_train_with_the_default_attention_works_without_parsing_weights(tmp_path, photo_dir, monkeypatch, capsys):
    # The path a new user takes: `fakelocator synth`, then `fakelocator train --data` with the
    # defaults. Face-part regions name facial properties, so attention is auto: it must fall back to
    # no attention (the parsing weights are not shipped) rather than stop training.
    from fakelocator.training.attention import parsing

    monkeypatch.delenv(parsing.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(parsing, "facexlib_weights_dir", lambda: tmp_path / "no-weights-here")
    data = tmp_path / "data"
    assert main(["synth", str(data), "--n", "8", "--seed", "1", "--workers", "1", "--sizes", "224", "240",
                 "--photos", str(photo_dir), "--no-bundled", "--quiet"]) == 0
    properties = {row["property"] for row in _manifest(data)}
    assert properties & {"face", "hair", "eyes", "mouth", "nose"}, properties
    capsys.readouterr()
    rc = main(["train", "--data", str(data), "--input-size", "32", "32", "--unet-width", "4", "--epochs", "1",
               "--batch", "4", "--max-steps", "1", "--workers", "0", "--threads", "1", "--device", "cpu",
               "--out", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_contact_sheet_labels_are_readable_over_light_and_dark_images():
    from fakelocator.training.synth.sheet import label_box

    for level in (255, 200, 0):
        tile = np.full((96, 96, 3), level, np.uint8)
        out = label_box(tile, "gan_pixelshuffle 0.74")
        changed = np.any(out != tile, axis=2)
        ys, xs = np.nonzero(changed)
        box = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(int)
        text, ground = box.max(axis=2) >= 200, box.max(axis=2) <= 80  # white strokes on a dark box
        assert text.sum() > 30 and ground.sum() > text.sum(), level
        assert not changed[:60].any()  # the label stays at the bottom
