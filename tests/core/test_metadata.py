"""The ONNX metadata keys: written once, read back exactly, malformed values named."""

import json

import onnx
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import (
    CONFIG_KEY,
    DEFAULT_THRESHOLD,
    PRECISION_KEY,
    PREPROCESSING_KEY,
    PROVENANCE_KEY,
    THRESHOLD_KEY,
    VERSION_KEY,
    ModelMetadata,
    props_of,
    write_metadata,
)

META = ModelMetadata(
    preprocessing=Preprocessing(height=96, width=128, color_order="BGR"),
    config={"backbone": "unet_lite", "unet_width": 4},
    provenance={"seed": 3, "data": "synth"},
    version="9.9.9",
    precision="fp16",
)


def test_the_brief_keys_round_trip():
    props = META.to_props()
    assert set(props) == {PREPROCESSING_KEY, CONFIG_KEY, PROVENANCE_KEY, VERSION_KEY, PRECISION_KEY, THRESHOLD_KEY}
    assert props[PREPROCESSING_KEY] == META.preprocessing.to_json()
    assert json.loads(props[CONFIG_KEY]) == META.config and props[PRECISION_KEY] == "fp16"
    assert ModelMetadata.from_props(props) == META


def test_writing_keeps_foreign_keys_and_replaces_ours():
    model = onnx.ModelProto()
    entry = model.metadata_props.add()
    entry.key, entry.value = "author", "someone"
    stale = model.metadata_props.add()
    stale.key, stale.value = PRECISION_KEY, "fp32"
    write_metadata(model, META)
    props = props_of(model)
    assert props["author"] == "someone" and props[PRECISION_KEY] == "fp16"
    assert len(model.metadata_props) == 7


def test_a_model_without_the_contract_is_not_ours():
    with pytest.raises(FakeLocatorError, match=r"model x.onnx: no fakelocator.preprocessing .*fakelocator export onnx"):
        ModelMetadata.from_props({}, source="model x.onnx")


@pytest.mark.parametrize(
    "key, value, message",
    [
        (CONFIG_KEY, "{broken", "fakelocator.model_config is not valid JSON"),
        (PROVENANCE_KEY, "[1, 2]", "fakelocator.provenance must be a JSON object"),
        (PRECISION_KEY, "int4", "fakelocator.precision must be one of"),
        (PREPROCESSING_KEY, json.dumps({"height": 4}), "height and width must be integers >= 8"),
    ],
)
def test_malformed_values_are_named(key, value, message):
    props = dict(META.to_props(), **{key: value})
    with pytest.raises(FakeLocatorError, match=message) as e:
        ModelMetadata.from_props(props, source="model m.onnx")
    assert str(e.value).startswith("model m.onnx: ")


def test_optional_keys_have_defaults():
    meta = ModelMetadata.from_props({PREPROCESSING_KEY: Preprocessing().to_json()})
    assert meta.config == {} and meta.provenance == {} and meta.precision == "fp32" and meta.version == ""


def test_a_model_states_its_decision_threshold_and_one_without_reads_the_default():
    props = META.with_threshold(0.7).to_props()
    assert ModelMetadata.from_props(props).threshold == 0.7
    del props[THRESHOLD_KEY]
    assert ModelMetadata.from_props(props).threshold == DEFAULT_THRESHOLD == 0.5


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "high"])
def test_a_threshold_outside_0_1_is_refused_naming_the_key(value):
    props = META.to_props()
    props[THRESHOLD_KEY] = value
    with pytest.raises(FakeLocatorError, match="fakelocator.threshold"):
        ModelMetadata.from_props(props, source="m.onnx")


def test_int8_is_a_precision_a_model_may_state():
    assert ModelMetadata.from_props(META.with_precision("int8").to_props()).precision == "int8"
