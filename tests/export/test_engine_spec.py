"""The pure engine logic: profiles, options, precision decisions, sidecar, compatibility, cache keys."""

import argparse
import json
from dataclasses import replace

import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.export.engine_spec import (
    ParserError,
    format_parser_errors,
    parse_batch,
    parse_hw,
    parse_size,
    plan_precision,
)
from fakelocator.runtime.engine_cache import cache_key, cache_root, cached_engine_path
from fakelocator.runtime.engine_sidecar import (
    BuildOptions,
    EngineSidecar,
    Environment,
    ShapeProfile,
    ensure_compatible,
    ensure_matches_plan,
    make_profile,
    mismatches,
    rebuild_command,
    sidecar_path,
)

HERE = Environment("10.16.1.11", "NVIDIA L4", (8, 9))
PROFILE = ShapeProfile("image", (1, 3, 224, 224), (16, 3, 224, 224), (64, 3, 224, 224))


def sidecar(**changes) -> EngineSidecar:
    base = EngineSidecar(
        tensorrt_version=HERE.tensorrt_version,
        gpu_name=HERE.gpu_name,
        compute_capability=HERE.compute_capability,
        precision="fp16",
        strongly_typed=True,
        profiles=(PROFILE,),
        onnx_path="models/model.onnx",
        onnx_sha256="ab" * 32,
        engine_sha256="cd" * 32,
        preprocessing={"height": 224, "width": 224},
        model_config={"backbone": "unet_lite"},
        options=BuildOptions(batch=(1, 16, 64), precision="fp16"),
        io=({"name": "image", "mode": "input", "dtype": "float32", "shape": [-1, 3, 224, 224]},),
    )
    return replace(base, **changes)


# ---- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("1,16,64", (1, 16, 64)), ("16", (1, 16, 16)), (" 2, 2 ,2", (2, 2, 2))])
def test_batch_spec_is_min_opt_max_or_a_max(text, expected):
    assert parse_batch(text) == expected


@pytest.mark.parametrize("text", ["0,1,2", "4,2,8", "1,2", "a,b,c", "1,2,3,4", ""])
def test_bad_batch_specs_are_refused_with_an_example(text):
    with pytest.raises(FakeLocatorError, match="--batch-range"):
        parse_batch(text)


def test_hw_spec_gives_min_opt_max_sizes():
    assert parse_hw("160x160,224x224,512x384") == ((160, 160), (224, 224), (512, 384))
    assert parse_hw("224X224") == ((224, 224),) * 3
    with pytest.raises(FakeLocatorError, match="min <= opt <= max"):
        parse_hw("224x224,160x160,512x512")
    with pytest.raises(FakeLocatorError, match="HxW"):
        parse_hw("224")


@pytest.mark.parametrize("text, expected", [("4GiB", 4 << 30), ("512MiB", 512 << 20), ("2G", 2 << 30), ("1024", 1024), ("1.5k", 1536)])
def test_sizes_take_binary_units(text, expected):
    assert parse_size(text) == expected


# ---- profiles -----------------------------------------------------------------------------------


def test_a_static_onnx_gets_its_own_size_at_every_batch():
    profile, notes = make_profile("image", ("batch", 3, 224, 224), (1, 16, 64), None, (224, 224))
    assert profile == PROFILE and notes == []
    assert profile.batch == (1, 16, 64)
    assert profile.accepts((7, 3, 224, 224)) and not profile.accepts((65, 3, 224, 224))
    assert not profile.accepts((1, 3, 224, 225))


def test_dynamic_hw_takes_the_hw_spec():
    profile, _ = make_profile("image", ("batch", 3, "height", "width"), (1, 4, 8), ((128, 128), (224, 224), (512, 384)), (224, 224))
    assert profile.min == (1, 3, 128, 128) and profile.opt == (4, 3, 224, 224) and profile.max == (8, 3, 512, 384)


def test_dynamic_hw_without_a_spec_uses_the_contract_size_and_says_so():
    profile, notes = make_profile("image", ("batch", 3, "height", "width"), (1, 4, 8), None, (160, 192))
    assert profile.min[2:] == profile.max[2:] == (160, 192)
    assert len(notes) == 1 and "160x192" in notes[0]


def test_hw_spec_on_a_static_onnx_is_an_error():
    with pytest.raises(FakeLocatorError, match="fixed size 224x224"):
        make_profile("image", ("batch", 3, 224, 224), (1, 1, 1), ((128, 128),) * 3, (224, 224))


def test_a_fixed_batch_must_match_the_batch_spec():
    assert make_profile("image", (4, 3, 64, 64), (4, 4, 4), None, (64, 64))[0].batch == (4, 4, 4)
    with pytest.raises(FakeLocatorError, match="fixed batch of 4"):
        make_profile("image", (4, 3, 64, 64), (1, 4, 8), None, (64, 64))


def test_profile_round_trips_through_a_dict():
    assert ShapeProfile.from_dict(json.loads(json.dumps(PROFILE.to_dict()))) == PROFILE


# ---- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(batch=(2, 1, 4)), "batch"),
        (dict(precision="int4"), "precision"),
        (dict(weak_fp16=True, precision="fp32"), "weak_fp16"),
        (dict(optimization_level=6), "optimization_level"),
        (dict(hardware_compatibility="turing"), "hardware_compatibility"),
        (dict(workspace=0), "workspace"),
        (dict(exclude_lean_runtime=True), "version-compatible"),
    ],
)
def test_invalid_build_options_are_refused(changes, message):
    with pytest.raises(FakeLocatorError, match=message):
        BuildOptions(**changes)


def test_options_turn_into_the_cli_arguments_that_reproduce_them():
    from fakelocator.commands.export import add_arguments, build_options

    options = BuildOptions(
        batch=(2, 8, 16), hw=((128, 128), (224, 224), (256, 320)), precision="fp16", tf32=False, workspace=1 << 30,
        optimization_level=5, hardware_compatibility="ampere_plus", version_compatible=True, exclude_lean_runtime=True,
        timing_cache="cache.bin",
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["engine", "m.onnx", *options.cli_args()])
    assert build_options(args) == options
    assert BuildOptions().cli_args() == ["--batch-range", "1,8,32"]


def test_the_timing_cache_path_is_not_part_of_the_key_fields():
    assert "timing_cache" not in BuildOptions(timing_cache="x").key_fields()


# ---- precision ----------------------------------------------------------------------------------


def _plan(onnx, version="10.16.1.11", has_flag=True, **options):
    return plan_precision(onnx, BuildOptions(**options), tensorrt_version=version, has_fp16_flag=has_flag)


def test_precision_follows_the_onnx_in_a_strongly_typed_network():
    fp32, fp16 = _plan("fp32"), _plan("fp16")
    assert (fp32.strongly_typed, fp32.fp16_flag, fp32.convert_to_fp16, fp32.engine_precision) == (True, False, False, "fp32")
    assert (fp16.strongly_typed, fp16.fp16_flag, fp16.convert_to_fp16, fp16.engine_precision) == (True, False, False, "fp16")


def test_fp16_from_an_fp32_onnx_converts_first_and_says_so():
    plan = _plan("fp32", precision="fp16")
    assert plan.convert_to_fp16 and plan.strongly_typed and not plan.fp16_flag and plan.engine_precision == "fp16"
    assert any("converted" in note for note in plan.notes)


def test_an_fp16_onnx_cannot_become_an_fp32_engine():
    with pytest.raises(FakeLocatorError, match="fp32 export"):
        _plan("fp16", precision="fp32")


def test_the_weak_typing_flag_is_used_only_when_asked_and_only_where_it_exists():
    weak = _plan("fp32", weak_fp16=True)
    assert (weak.strongly_typed, weak.fp16_flag, weak.convert_to_fp16) == (False, True, False)
    assert any("deprecated" in note for note in weak.notes)
    with pytest.raises(FakeLocatorError, match="TensorRT 11.1.0.5 has no FP16 builder flag"):
        _plan("fp32", version="11.1.0.5", has_flag=False, weak_fp16=True)
    with pytest.raises(FakeLocatorError, match="already fp16"):
        _plan("fp16", weak_fp16=True)


# ---- parser errors ------------------------------------------------------------------------------


def test_parser_errors_are_all_listed_with_their_nodes():
    errors = [
        ParserError("UNSUPPORTED_NODE", "no importer for op FancyOp", 12, "/decoder/Fancy", "FancyOp"),
        ParserError("INVALID_GRAPH", "bad initializer"),
    ]
    text = format_parser_errors("m.onnx", errors)
    lines = text.splitlines()
    assert lines[0] == "TensorRT cannot parse m.onnx: 2 errors"
    assert "node 12 '/decoder/Fancy' (FancyOp): UNSUPPORTED_NODE: no importer for op FancyOp" in lines[1]
    assert lines[2].strip() == "graph: INVALID_GRAPH: bad initializer"


# ---- sidecar ------------------------------------------------------------------------------------


def test_sidecar_round_trips_through_json(tmp_path):
    original = sidecar().stamped()
    path = original.write(tmp_path / "m.engine.json")
    again = EngineSidecar.read(path)
    assert again == original
    assert again.created and again.profile == PROFILE and again.environment == HERE
    assert json.loads(path.read_text())["schema"] == "fakelocator.engine/1"


def test_sidecar_lives_beside_the_engine():
    assert str(sidecar_path("out/model.engine")).endswith("out/model.engine.json")


def test_a_missing_or_foreign_sidecar_is_a_clear_error(tmp_path):
    with pytest.raises(FakeLocatorError, match="no such file.*rebuild"):
        EngineSidecar.read(tmp_path / "none.engine.json")
    (tmp_path / "a.json").write_text(json.dumps({"schema": "other/2"}))
    with pytest.raises(FakeLocatorError, match="schema 'other/2'"):
        EngineSidecar.read(tmp_path / "a.json")
    d = sidecar().to_dict()
    del d["gpu_name"]
    (tmp_path / "b.json").write_text(json.dumps(d))
    with pytest.raises(FakeLocatorError, match="missing gpu_name"):
        EngineSidecar.read(tmp_path / "b.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(FakeLocatorError, match="not readable JSON"):
        EngineSidecar.read(tmp_path / "c.json")


# ---- compatibility ------------------------------------------------------------------------------


def test_an_engine_runs_where_it_was_built():
    assert mismatches(sidecar(), HERE) == []


def test_another_tensorrt_version_is_refused_with_the_rebuild_command():
    here = replace(HERE, tensorrt_version="10.16.2.3")
    with pytest.raises(FakeLocatorError) as e:
        ensure_compatible(sidecar(), here, "out/model.engine")
    message = str(e.value)
    assert "built with TensorRT 10.16.1.11, this machine has TensorRT 10.16.2.3" in message
    assert "fakelocator export engine models/model.onnx -o out/model.engine --batch-range 1,16,64 --fp16" in message


def test_another_gpu_is_refused_naming_both_gpus():
    problems = mismatches(sidecar(), Environment(HERE.tensorrt_version, "NVIDIA H100 80GB HBM3", (9, 0)))
    assert problems == ["built for NVIDIA L4 (sm_89), this GPU is NVIDIA H100 80GB HBM3 (sm_90)"]


def test_same_compute_capability_other_name_needs_a_compatible_build():
    other = Environment(HERE.tensorrt_version, "NVIDIA GeForce RTX 4090", (8, 9))
    assert "same_compute_capability" in mismatches(sidecar(), other)[0]
    shared = sidecar(options=BuildOptions(hardware_compatibility="same_compute_capability"))
    assert mismatches(shared, other) == []


def test_ampere_plus_engines_run_on_any_ampere_or_later_gpu():
    engine = sidecar(options=BuildOptions(hardware_compatibility="ampere_plus"))
    assert mismatches(engine, Environment(HERE.tensorrt_version, "NVIDIA H100", (9, 0))) == []
    assert "Ampere or later" in mismatches(engine, Environment(HERE.tensorrt_version, "Tesla T4", (7, 5)))[0]


@pytest.mark.parametrize(
    "built, running, ok",
    [("10.8.0.43", "10.16.1.11", True), ("10.16.1.11", "10.8.0.43", False), ("10.16.1.11", "11.1.0.5", True),
     ("8.6.1.6", "10.16.1.11", True), ("8.6.1.6", "11.1.0.5", False)],
)
def test_version_compatible_engines_run_on_later_compatible_tensorrt(built, running, ok):
    engine = sidecar(tensorrt_version=built, options=BuildOptions(version_compatible=True))
    assert (mismatches(engine, replace(HERE, tensorrt_version=running)) == []) is ok


def test_every_mismatch_is_named_at_once():
    there = Environment("11.1.0.5", "Tesla T4", (7, 5))
    assert len(mismatches(sidecar(), there)) == 2


def test_a_plan_that_is_not_the_one_described_is_refused():
    ensure_matches_plan(sidecar(), "cd" * 32, "m.engine")
    with pytest.raises(FakeLocatorError, match="sha256 differs"):
        ensure_matches_plan(sidecar(), "00" * 32, "m.engine")


def test_rebuild_command_quotes_paths():
    assert "'my models/m.onnx'" in rebuild_command(sidecar(onnx_path="my models/m.onnx"), "m.engine")


# ---- cache --------------------------------------------------------------------------------------


def test_cache_key_changes_with_everything_that_changes_the_plan():
    options = BuildOptions(batch=(1, 16, 64))
    key = cache_key(HERE, "ab" * 32, PROFILE, options)
    assert key == cache_key(HERE, "ab" * 32, PROFILE, options)
    assert key == cache_key(HERE, "ab" * 32, PROFILE, replace(options, timing_cache="t.cache"))
    others = [
        cache_key(replace(HERE, gpu_name="NVIDIA A10"), "ab" * 32, PROFILE, options),
        cache_key(replace(HERE, compute_capability=(8, 6)), "ab" * 32, PROFILE, options),
        cache_key(replace(HERE, tensorrt_version="10.16.2.3"), "ab" * 32, PROFILE, options),
        cache_key(HERE, "ef" * 32, PROFILE, options),
        cache_key(HERE, "ab" * 32, replace(PROFILE, max=(32, 3, 224, 224)), options),
        cache_key(HERE, "ab" * 32, PROFILE, replace(options, precision="fp16")),
        cache_key(HERE, "ab" * 32, PROFILE, replace(options, tf32=False)),
    ]
    assert len({key, *others}) == len(others) + 1


def test_cache_root_follows_the_environment(tmp_path):
    assert cache_root({"FAKELOCATOR_CACHE": str(tmp_path)}) == tmp_path / "engines"
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "fakelocator" / "engines"
    assert cache_root({}).parts[-3:] == (".cache", "fakelocator", "engines")


def test_cached_engine_names_are_safe_file_names(tmp_path):
    path = cached_engine_path(tmp_path, "weird name;rm -rf.onnx", "0123")
    assert path.parent == tmp_path and path.name == "weird_name_rm_-rf-0123.engine"


def test_a_native_model_gets_a_batch_only_profile_of_its_tiles():
    from fakelocator.export.engine_spec import NATIVE_BATCH, default_batch

    assert default_batch(True) == NATIVE_BATCH == (1, 32, 64) and default_batch(False) == (1, 8, 32)
    profile, notes = make_profile("image", ("batch", 3, "height", "width"), NATIVE_BATCH, None, (224, 224), native=True)
    assert profile.min == (1, 3, 224, 224) and profile.opt == (32, 3, 224, 224) and profile.max == (64, 3, 224, 224)
    assert notes == ["native analysis: the engine takes 224x224 tiles (dynamic batch only)"]
    with pytest.raises(FakeLocatorError, match="native analysis"):
        make_profile("image", ("batch", 3, "height", "width"), NATIVE_BATCH, ((224, 224), (448, 448), (512, 512)), (224, 224), native=True)
    with pytest.raises(FakeLocatorError, match="native tiles are 224x224"):
        make_profile("image", ("batch", 3, 256, 256), NATIVE_BATCH, None, (224, 224), native=True)
