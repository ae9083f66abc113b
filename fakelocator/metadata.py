"""The metadata a saved model carries, its keys defined and parsed in one place.

Every exported model stores, as ONNX ``metadata_props`` (string → string):

- ``fakelocator.preprocessing``: the preprocessing contract (``Preprocessing.to_json()``);
- ``fakelocator.model_config``: the network's ``ModelConfig.to_dict()`` as JSON;
- ``fakelocator.provenance``: training provenance as JSON (data, seed, commit, metrics…);
- ``fakelocator.version``: the fakelocator version that exported it;
- ``fakelocator.precision``: ``fp32``, ``fp16`` for a mixed-precision model with fp32 inputs and outputs,
  or ``int8`` for a quantized (QDQ) model with fp32 inputs and outputs;
- ``fakelocator.threshold``: the score at and above which the model calls an input fake, as calibrated
  for this model (a decimal number in [0, 1]); a model without the key reads ``DEFAULT_THRESHOLD``;
- ``fakelocator.quantization`` (int8 models only): JSON, how it was quantized (format, target,
  activation and weight types, calibration method, tile count and seed, the source's sha256) and its
  accuracy gate's figures (``fakelocator.export.int8``); ``read_quantization`` parses it.

The same keys label a ``.safetensors`` weights file (training/checkpoint.py), an ONNX file's
``metadata_props`` (export) and a Triton model's parameters. ``ModelMetadata.from_props`` takes any
``Mapping[str, str]`` (``onnx.ModelProto.metadata_props`` as a dict, ONNX Runtime's
``custom_metadata_map``, an engine sidecar), so this module needs neither torch nor onnx
(``fakelocator.runtime.onnx_info.read_onnx_info`` reads an ONNX file's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fakelocator import __version__
from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError

PREPROCESSING_KEY = "fakelocator.preprocessing"
CONFIG_KEY = "fakelocator.model_config"
PROVENANCE_KEY = "fakelocator.provenance"
VERSION_KEY = "fakelocator.version"
PRECISION_KEY = "fakelocator.precision"
THRESHOLD_KEY = "fakelocator.threshold"
QUANTIZATION_KEY = "fakelocator.quantization"
KEYS = (PREPROCESSING_KEY, CONFIG_KEY, PROVENANCE_KEY, VERSION_KEY, PRECISION_KEY, THRESHOLD_KEY)
PRECISIONS = ("fp32", "fp16", "int8")
# What a model that states no threshold of its own is read with (every model before the key existed).
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ModelMetadata:
    """What an exported model says about itself."""

    preprocessing: Preprocessing
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    precision: str = "fp32"
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise FakeLocatorError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0):
            raise FakeLocatorError(f"threshold must be a number in [0, 1], got {self.threshold!r}")

    def to_props(self) -> dict[str, str]:
        return {
            PREPROCESSING_KEY: self.preprocessing.to_json(),
            CONFIG_KEY: json.dumps(self.config, sort_keys=True),
            PROVENANCE_KEY: json.dumps(self.provenance, sort_keys=True),
            VERSION_KEY: self.version,
            PRECISION_KEY: self.precision,
            THRESHOLD_KEY: repr(float(self.threshold)),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> "ModelMetadata":
        """Parse metadata props; a missing or malformed key is an error that names ``source`` and the key."""
        if PREPROCESSING_KEY not in props:
            raise FakeLocatorError(
                f"{source}: no {PREPROCESSING_KEY} in its metadata; it was not exported by fakelocator "
                "(export it with `fakelocator export onnx`)"
            )
        try:
            preprocessing = Preprocessing.from_json(props[PREPROCESSING_KEY])
        except FakeLocatorError as e:
            raise FakeLocatorError(f"{source}: {e}") from None
        return cls(
            preprocessing=preprocessing,
            config=_json_dict(props, CONFIG_KEY, source),
            provenance=_json_dict(props, PROVENANCE_KEY, source),
            version=props.get(VERSION_KEY, ""),
            precision=_precision(props.get(PRECISION_KEY, "fp32"), source),
            threshold=_threshold(props.get(THRESHOLD_KEY), source),
        )

    def with_precision(self, precision: str) -> "ModelMetadata":
        return replace(self, precision=precision)

    def with_threshold(self, threshold: float) -> "ModelMetadata":
        return replace(self, threshold=float(threshold))


def _json_dict(props: Mapping[str, str], key: str, source: str) -> dict[str, Any]:
    text = props.get(key)
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise FakeLocatorError(f"{source}: metadata {key} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise FakeLocatorError(f"{source}: metadata {key} must be a JSON object, got {type(value).__name__}")
    return value


def _precision(value: str, source: str) -> str:
    if value not in PRECISIONS:
        raise FakeLocatorError(f"{source}: metadata {PRECISION_KEY} must be one of {PRECISIONS}, got {value!r}")
    return value


def _threshold(value: str | None, source: str) -> float:
    if value is None:
        return DEFAULT_THRESHOLD
    try:
        threshold = float(value)
    except ValueError:
        threshold = float("nan")
    if not 0.0 <= threshold <= 1.0:
        raise FakeLocatorError(f"{source}: metadata {THRESHOLD_KEY} must be a number in [0, 1], got {value!r}")
    return threshold


def read_quantization(props: Mapping[str, str], source: str = "model") -> dict[str, Any] | None:
    """The ``fakelocator.quantization`` record of an int8 model's props; None when there is none."""
    if QUANTIZATION_KEY not in props:
        return None
    return _json_dict(props, QUANTIZATION_KEY, source)


def props_of(model) -> dict[str, str]:
    """An ``onnx.ModelProto``'s metadata_props as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def write_metadata(model, metadata: ModelMetadata) -> None:
    """Set the fakelocator keys on an ``onnx.ModelProto`` in place, keeping any other keys."""
    props = props_of(model)
    props.update(metadata.to_props())
    del model.metadata_props[:]
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]
