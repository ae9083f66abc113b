"""Face-parsing attention (Sec. IV-C): the property → region table, the blur, the provider and its cache.

The parser here is a stub that returns a known label map, so each test can say where the region
is; test_attention_parsing.py runs facexlib's real networks.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.training.attention import parsing
from fakelocator.training.attention.cache import ParsingCache
from fakelocator.training.attention.labels import (
    CANONICAL_LUT, FACE, LABEL, LABELS, PARSENET_LABELS, PROPERTY_REGIONS, UnknownPropertyError, normalize_property,
    region_mask, region_spec,
)
from fakelocator.training.attention.maps import attention_map
from fakelocator.training.attention.provider import AttentionConfig, FaceAttention, assign_properties, build_attention
from fakelocator.training.samples import Sample, load_samples

# ------------------------------------------------------------------------------ property → region


@pytest.mark.parametrize("prop, labels", [
    ("Bald", {"hair"}), ("Bangs", {"hair"}), ("Black hair", {"hair"}), ("Blond hair", {"hair"}),
    ("Brown hair", {"hair"}), ("Eyeglasses", {"eye_g", "l_eye", "r_eye"}), ("Smile", {"mouth", "u_lip", "l_lip"}),
    ("Male", set(FACE) | {"hair"}), ("Gender", set(FACE) | {"hair"}), ("Age", set(FACE) | {"hair"}),
    # the synthetic generator's region names
    ("hair", {"hair"}), ("eyes", {"l_eye", "r_eye"}), ("mouth", {"mouth", "u_lip", "l_lip"}), ("nose", {"nose"}),
    ("face", set(FACE)),
])
def test_every_table_ii_property_and_region_name_has_its_labels(prop, labels):
    spec = region_spec(prop)
    assert set(spec.labels) == labels and not spec.everything and not spec.upper_lip_band


def test_mustache_is_the_band_around_the_upper_lip_and_entire_is_everything():
    assert region_spec("Mustache").upper_lip_band and not region_spec("Mustache").labels
    for white in ("Entire", "entire", "ellipse", "blob"):
        assert region_spec(white).everything, white


def test_names_are_case_and_separator_insensitive_and_plus_joins_regions():
    assert normalize_property(" Black-Hair ") == normalize_property("black_hair") == normalize_property("BLACK hair")
    assert region_spec("BLOND HAIR") == region_spec("blond_hair")
    assert set(region_spec("Smile+Eyeglasses").labels) == {"mouth", "u_lip", "l_lip", "eye_g", "l_eye", "r_eye"}
    assert region_spec("") is None and region_spec("  ") is None, "real images have no property"


def test_an_unknown_property_is_an_error_that_lists_the_known_names():
    with pytest.raises(UnknownPropertyError, match="'Wings'.*known.*black_hair.*smile"):
        region_spec("Wings")


def test_both_parsers_numberings_become_the_canonical_one():
    assert len(LABELS) == len(PARSENET_LABELS) == 19 and set(LABELS) == set(PARSENET_LABELS)
    assert (CANONICAL_LUT["bisenet"][:19] == np.arange(19)).all()
    lut = CANONICAL_LUT["parsenet"]
    # The two orders differ: ParseNet's 13 is hair (BiSeNet's 17), its 2 the nose (BiSeNet's 10) ...
    assert (lut[13], lut[2], lut[10], lut[3], lut[18]) == (LABEL["hair"], LABEL["nose"], LABEL["mouth"], LABEL["eye_g"], LABEL["cloth"])
    assert all(LABELS[lut[i]] == name for i, name in enumerate(PARSENET_LABELS))


def toy_face(size: int = 64) -> np.ndarray:
    """A canonical label map: hair on top, skin below, a nose, an upper and a lower lip."""
    labels = np.zeros((size, size), np.uint8)
    labels[: size // 4] = LABEL["hair"]
    labels[size // 4:] = LABEL["skin"]
    labels[30:40, 28:36] = LABEL["nose"]
    labels[44:47, 24:40] = LABEL["u_lip"]
    labels[47:50, 24:40] = LABEL["l_lip"]
    return labels


def test_the_mustache_band_covers_the_upper_lip_and_the_skin_up_to_the_nose():
    labels = toy_face()
    band = region_mask(labels, region_spec("Mustache"))
    ys, xs = np.nonzero(band)
    assert ys.min() == 39 and ys.max() == 46, "from the nose's last row to the upper lip's last row"
    assert xs.min() < 24 and xs.max() > 39, "a little wider than the lip"
    assert not band[labels == LABEL["nose"]].any() and not band[labels == LABEL["l_lip"]].any()
    assert band[labels == LABEL["u_lip"]].all()


def test_region_masks_select_the_labels():
    labels = toy_face()
    assert (region_mask(labels, region_spec("Blond hair")) == (labels == LABEL["hair"])).all()
    assert (region_mask(labels, region_spec("Smile")) == np.isin(labels, [LABEL["u_lip"], LABEL["l_lip"]])).all()
    assert region_mask(labels, region_spec("entire")) is None


# -------------------------------------------------------------------------------------- the blur


def disc(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= radius ** 2


def test_the_blur_keeps_the_region_white_and_widens_it_monotonically_down_to_the_floor():
    region = disc(128, 20)
    a = attention_map(region, 128, 128, spread=0.05, floor=0.25)
    assert a.dtype == np.float32 and a.shape == (128, 128)
    assert (a[region] == 1).all(), "inside: 1"
    assert (a[~region] < 1).all() and (a >= 0.25).all(), "outside: lower, never below the floor"
    ray = a[64, 64:]  # from the centre to the right edge
    assert (np.diff(ray) <= 1e-6).all(), "monotone away from the region"
    assert ray[20 + 6] > 0.25 + 0.75 * 0.5, "one sigma (6.4 px) out it is still more than half way up"
    assert ray[-1] == pytest.approx(0.25, abs=1e-3), "far away: the floor"


def test_the_spread_is_relative_to_the_image_and_the_label_map_is_stretched_to_it():
    region = disc(64, 10)  # a parser's square map
    small = attention_map(region, 100, 150)
    large = attention_map(region, 400, 600)
    assert small.shape == (100, 150) and large.shape == (400, 600)
    down = cv2.resize(large, (150, 100), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small).mean() < 0.01, "the same map at any resolution"
    assert small[50, 75] == 1 and small[0, 0] < 0.3


def test_no_spread_gives_the_region_on_the_floor_and_bad_settings_are_refused():
    region = disc(32, 8)
    a = attention_map(region, 32, 32, spread=0, floor=0.4)
    assert set(np.unique(a).tolist()) == {np.float32(0.4), 1.0}
    assert (attention_map(np.zeros((8, 8), bool), 16, 16) == 0.25).all(), "an empty region: the floor"
    with pytest.raises(FakeLocatorError, match="floor"):
        attention_map(region, 32, 32, floor=1.5)
    with pytest.raises(FakeLocatorError, match="spread"):
        attention_map(region, 32, 32, spread=-1)


# ---------------------------------------------------------------------------------- the provider


class StubParser:
    """Returns ``toy_face`` for every image and counts the images it parsed."""

    def __init__(self, identity: str = "stub:1", name: str = "stub"):
        self.identity = identity
        self.name = name
        self.calls = 0

    def parse(self, images):
        self.calls += len(images)
        return [toy_face() for _ in images]


def write_dataset(root, rows, size=(48, 40)) -> list[Sample]:
    """Images (random noise) and a manifest; ``rows`` are (image, real, kind, property)."""
    rng = np.random.default_rng(0)
    lines = ["image,real,kind,property"]
    for image, real, kind, prop in rows:
        path = root / image
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        lines.append(f"{image},{real},{kind},{prop}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return load_samples(root)


ROWS = [
    ("real/a.png", "", "real", ""), ("fake/a.png", "real/a.png", "partial", "Smile"),
    ("real/b.png", "", "real", ""), ("fake/b.png", "real/b.png", "partial", "Blond hair"),
    ("real/c.png", "", "real", ""), ("entire/d.png", "", "entire", "entire"),
]


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data", ROWS)


def by_name(samples, rel):
    return next(s for s in samples if s.image.as_posix().endswith(rel))


def test_real_images_borrow_a_property_so_the_map_does_not_give_the_label_away(dataset):
    assigned = assign_properties(dataset)
    assert assigned[os.path.abspath(by_name(dataset, "real/a.png").image)] == "Smile", "its own fake's"
    assert assigned[os.path.abspath(by_name(dataset, "real/b.png").image)] == "Blond hair"
    assert assigned[os.path.abspath(by_name(dataset, "real/c.png").image)] in {"Smile", "Blond hair", "entire"}
    assert assign_properties(list(reversed(dataset))) == assigned, "deterministic"


def test_the_provider_shapes_fakes_and_reals_alike_and_whitens_entire_syntheses(dataset):
    parser = StubParser()
    attention = FaceAttention(dataset, parser=parser)
    image = np.zeros((48, 40, 3), np.uint8)
    fake, real = attention(by_name(dataset, "fake/b.png"), image), attention(by_name(dataset, "real/b.png"), image)
    assert fake.shape == (48, 40) and fake.dtype == np.float32
    np.testing.assert_array_equal(fake, real)
    hair_rows = 48 // 4
    assert (fake[:hair_rows - 1] == 1).all() and fake[-1].max() < 0.5, "hair (on top) is white, the chin is not"
    assert (attention(by_name(dataset, "entire/d.png"), image) == 1).all()


def test_a_region_the_parser_does_not_find_gives_the_white_map(tmp_path):
    samples = write_dataset(tmp_path / "d", [("real/a.png", "", "real", ""), ("fake/a.png", "real/a.png", "partial", "Eyeglasses")])
    attention = FaceAttention(samples, parser=StubParser())  # toy_face has no glasses and no eyes
    assert (attention(samples[1], np.zeros((48, 40, 3), np.uint8)) == 1).all()


def test_parsings_are_cached_next_to_the_dataset_once_per_image(dataset):
    parser = StubParser()
    attention = FaceAttention(dataset, parser=parser)
    needed = [s.image.relative_to(s.root).as_posix() for s in dataset if attention.needs_parsing(s)]
    assert set(needed) >= {"real/a.png", "fake/a.png", "real/b.png", "fake/b.png"} and "entire/d.png" not in needed
    stats = attention.prepare()
    assert (stats.images, stats.cached, stats.parsed) == (len(needed), 0, len(needed))
    root = dataset[0].root
    cached = sorted(p.relative_to(root / ".attention" / "stub").as_posix() for p in (root / ".attention").rglob("*.png"))
    assert cached == sorted(f"{n}.png" for n in needed), "ROOT/.attention/<parser>/<rel>.png"
    again = FaceAttention(dataset, parser=parser)
    assert again.prepare().cached == len(needed) and parser.calls == len(needed), "a second run parses nothing"
    for s in dataset:
        again(s, np.zeros((48, 40, 3), np.uint8))
    assert parser.calls == len(needed)


def test_a_changed_image_or_other_weights_make_the_cache_stale(dataset):
    parser = StubParser()
    FaceAttention(dataset, parser=parser).prepare()
    fake = by_name(dataset, "fake/a.png")
    cv2.imwrite(str(fake.image), np.full((48, 40, 3), 7, np.uint8))
    st = os.stat(fake.image)
    os.utime(fake.image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert FaceAttention(dataset, parser=parser).prepare().parsed == 1
    other = FaceAttention(dataset, parser=StubParser("stub:2"))
    assert other.prepare().parsed == sum(other.needs_parsing(s) for s in dataset)
    cache = ParsingCache("stub")
    assert cache.read(fake.image, fake.root, None) is not None, "without weights at hand any weights' map is used"


def no_weights_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv(parsing.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(parsing, "facexlib_weights_dir", lambda: tmp_path / "no-weights-here")


def test_missing_parsing_weights_stop_training_at_the_start_naming_the_file_and_where_it_goes(dataset, monkeypatch, tmp_path):
    no_weights_anywhere(monkeypatch, tmp_path)
    with pytest.raises(FakeLocatorError) as e:
        build_attention(AttentionConfig(mode="on", parser="bisenet"), dataset)
    message = str(e.value)
    for words in ("parsing_bisenet.pth", "--parsing-weights", "FAKELOCATOR_PARSING_WEIGHTS", "--attention off",
                  "nothing is downloaded", "training image(s) without a cached parsing"):
        assert words in message, words
    with pytest.raises(FakeLocatorError, match="parsing_parsenet.pth"):
        build_attention(AttentionConfig(mode="on", parser="parsenet"), dataset)
    with pytest.raises(FakeLocatorError, match="nope.pth.*no such file"):
        build_attention(AttentionConfig(weights=str(tmp_path / "nope.pth")), dataset)


def test_without_parsing_weights_the_default_parser_is_the_shipped_face_mesh(dataset, monkeypatch, tmp_path):
    # The default (auto mode, auto parser) must not stop `fakelocator synth` → `fakelocator train`
    # for weights that are neither shipped nor downloaded: the mesh parser ships in the package.
    no_weights_anywhere(monkeypatch, tmp_path)
    attention = build_attention(AttentionConfig(), dataset)
    assert attention is not None and attention.model == "mesh" and attention.identity.startswith("mesh:mediapipe-")
    weights = tmp_path / "parsing_bisenet.pth"
    weights.write_bytes(b"x")
    assert parsing.resolve_model("auto", weights) == "bisenet", "BiSeNet when its weights are at hand"


def test_auto_with_a_facexlib_parser_and_no_weights_trains_without_attention_and_says_so(dataset, monkeypatch, tmp_path, caplog):
    no_weights_anywhere(monkeypatch, tmp_path)
    with caplog.at_level("WARNING"):
        assert build_attention(AttentionConfig(parser="bisenet"), dataset) is None
    assert "face attention: off" in caplog.text and "--parsing-weights" in caplog.text


def test_with_every_parsing_cached_no_weights_are_needed(dataset, monkeypatch, tmp_path):
    FaceAttention(dataset, parser=StubParser("bisenet:0123", name="bisenet")).prepare()
    no_weights_anywhere(monkeypatch, tmp_path)
    attention = build_attention(AttentionConfig(parser="bisenet"), dataset)
    assert attention is not None and attention.identity is None


def test_modes(dataset, tmp_path):
    plain = write_dataset(tmp_path / "plain", [("real/a.png", "", "real", ""), ("fake/a.png", "real/a.png", "partial", ""),
                                              ("fake/b.png", "real/a.png", "partial", "ellipse")])
    assert build_attention(AttentionConfig(mode="auto"), plain) is None, "no facial property: no attention"
    with pytest.raises(FakeLocatorError, match="--attention on.*no training sample names a facial property"):
        build_attention(AttentionConfig(mode="on"), plain)
    assert build_attention(AttentionConfig(mode="off"), dataset) is None
    with pytest.raises(FakeLocatorError, match="attention mode"):
        AttentionConfig(mode="always")


def test_unknown_properties_are_listed_with_an_example_image_before_anything_runs(tmp_path):
    samples = write_dataset(tmp_path / "d", [("real/a.png", "", "real", ""), ("fake/a.png", "real/a.png", "partial", "Wings"),
                                             ("fake/b.png", "real/a.png", "partial", "Wings"), ("fake/c.png", "real/a.png", "partial", "Tail")])
    with pytest.raises(UnknownPropertyError, match=r"'Tail' \(1 image\(s\).*'Wings' \(2 image\(s\), e\.g\. .*fake/a.png\).*--attention off"):
        build_attention(AttentionConfig(), samples)


def test_the_table_is_documented_in_docs_data_md():
    text = (__import__("pathlib").Path(__file__).parents[2] / "docs" / "data.md").read_text()
    for name in ("Bald", "Bangs", "Black hair", "Eyeglasses", "Smile", "Mustache", "Male", "Gender", "Age", "Entire"):
        assert f"`{name}`" in text, name
    assert len(PROPERTY_REGIONS) >= 25


def test_the_train_command_sets_the_attention_options():
    import argparse

    from fakelocator.commands import train as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--attention", "on", "--parsing-model", "parsenet", "--parsing-weights", "w.pth",
                              "--attention-cache", "cache"])
    config = command.resolve_config(args).attention
    assert config == AttentionConfig(mode="on", parser="parsenet", weights="w.pth", cache_dir="cache")
    assert command.resolve_config(parser.parse_args([])).attention == AttentionConfig()


def test_yaml_booleans_for_the_mode_mean_on_and_off():
    import yaml

    config = yaml.safe_load("mode: off")  # YAML 1.1: an unquoted off is False
    assert AttentionConfig(**config).mode == "off"
    assert AttentionConfig(mode=True).mode == "on"
