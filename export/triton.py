"""A Triton Inference Server model repository for an exported model: how a video platform runs it on
many GPUs and machines.

Layout (Triton's conventions: ``model.onnx`` for the onnxruntime backend, ``model.plan`` for the
tensorrt backend, numeric version folders)::

    REPO/<name>/config.pbtxt
    REPO/<name>/<version>/model.onnx | model.plan
    REPO/<name>/engine.json          (plan only: the engine's sidecar; Triton ignores it)

``config.pbtxt`` declares ``max_batch_size``, the input ``image`` and outputs ``map``, ``score``
(``features``) with their dims *without* the batch axis (-1 where dynamic), dynamic batching with
the queue delay and, when given, preferred batch sizes (Triton recommends them only for TensorRT
engines, so the plan defaults to its profile's opt and max and the ONNX to none), instance groups,
optional warm-up, and the preprocessing contract as the model parameter
``fakelocator.preprocessing`` so a client can read it from the server (``get_model_config``).

A plan only runs on the TensorRT version it was built with: the one inside the Triton container
(see the NGC support matrix), so build it with that version or serve the ONNX.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.export.engine_spec import EngineSidecar, sidecar_path
from fakelocator.metadata import CONFIG_KEY, PREPROCESSING_KEY
from fakelocator.export.onnx_file import INPUT_NAME, OUTPUT_NAMES, read_onnx_info

DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DEFAULT_ONNX_MAX_BATCH = 32


@dataclass(frozen=True)
class TritonOptions:
    """What goes into ``config.pbtxt`` beyond the tensors.

    Args:
        name: the model's name on the server (its folder in the repository).
        max_batch_size: the largest batch Triton forms; default: the engine profile's max batch, or 32 for an ONNX.
        preferred_batch_sizes: batch sizes the dynamic batcher aims for; None: the plan's profile
            opt and max, none for an ONNX.
        max_queue_delay_us: how long a request may wait for others to batch with (microseconds).
        instance_kind: "gpu" or "cpu" (a plan runs on GPUs only).
        instance_count: instances per GPU (or in all, on the CPU).
        gpus: GPU indices for the instances; empty: every GPU.
        warmup: declare a warm-up request (random data, batch 1) so the model is ready only once warm.
        version: the version folder.
        features: also serve the ``features`` output when the model has it.
    """

    name: str = "fakelocator"
    max_batch_size: int | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    max_queue_delay_us: int = 2000
    instance_kind: str = "gpu"
    instance_count: int = 1
    gpus: tuple[int, ...] = ()
    warmup: bool = True
    version: int = 1
    features: bool = True


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str  # Triton's TYPE_*
    dims: tuple[int, ...]  # without the batch axis; -1 where dynamic


@dataclass(frozen=True)
class ServedModel:
    """What Triton needs to know about the model file."""

    path: Path
    backend: str  # "onnxruntime" | "tensorrt"
    filename: str  # "model.onnx" | "model.plan"
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    batch_limits: tuple[int, int, int] | None  # the plan's (min, opt, max) batch; None for an ONNX
    contract_size: tuple[int, int]
    parameters: dict[str, str]


def describe_model(path: str | Path) -> ServedModel:
    """Read an ONNX file or an engine (with its sidecar) into the tensors and limits Triton serves."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        info = read_onnx_info(path)
        metadata = info.require_fakelocator()

        def tensor(spec):
            if spec.dtype not in DTYPES:
                raise FakeLocatorError(f"model {path}: tensor {spec.name} has type {spec.dtype}, not float32/float16")
            return Tensor(spec.name, DTYPES[spec.dtype], tuple(d if isinstance(d, int) else -1 for d in spec.shape[1:]))

        return ServedModel(
            path=path,
            backend="onnxruntime",
            filename="model.onnx",
            inputs=(tensor(info.input(INPUT_NAME)),),
            outputs=tuple(tensor(s) for s in info.outputs if s.name in OUTPUT_NAMES),
            batch_limits=None,
            contract_size=metadata.preprocessing.size,
            parameters={PREPROCESSING_KEY: metadata.preprocessing.to_json(), CONFIG_KEY: info.props.get(CONFIG_KEY, "{}")},
        )
    sidecar = EngineSidecar.read(sidecar_path(path))
    if not sidecar.io:
        raise FakeLocatorError(f"engine sidecar {sidecar_path(path)}: lists no I/O tensors; rebuild the engine")

    def tensor(t):
        if t["dtype"] not in DTYPES:
            raise FakeLocatorError(f"engine {path}: tensor {t['name']} has type {t['dtype']}, not float32/float16")
        return Tensor(t["name"], DTYPES[t["dtype"]], tuple(int(d) for d in t["shape"][1:]))

    import json

    pre = sidecar.preprocessing
    return ServedModel(
        path=path,
        backend="tensorrt",
        filename="model.plan",
        inputs=tuple(tensor(t) for t in sidecar.io if t["mode"] == "input"),
        outputs=tuple(tensor(t) for t in sidecar.io if t["mode"] == "output" and t["name"] in OUTPUT_NAMES),
        batch_limits=sidecar.profile.batch,
        contract_size=(int(pre["height"]), int(pre["width"])),
        parameters={
            PREPROCESSING_KEY: json.dumps(pre, sort_keys=True),
            CONFIG_KEY: json.dumps(sidecar.model_config, sort_keys=True),
            "fakelocator.tensorrt_version": sidecar.tensorrt_version,
        },
    )


def _string(text: str) -> str:
    """A protobuf text-format string literal."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _dims(dims) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def _resolve(model: ServedModel, options: TritonOptions) -> tuple[int, tuple[int, ...]]:
    """(max_batch_size, preferred batch sizes), checked against the model."""
    if options.instance_kind not in KINDS:
        raise FakeLocatorError(f"instance kind must be one of {tuple(KINDS)}, got {options.instance_kind!r}")
    if model.backend == "tensorrt" and options.instance_kind != "gpu":
        raise FakeLocatorError("a TensorRT plan runs on GPUs only: use instance kind gpu, or serve the ONNX on the CPU")
    if options.instance_kind == "cpu" and options.gpus:
        raise FakeLocatorError("gpus apply to GPU instances only")
    if options.instance_count < 1 or options.version < 1 or options.max_queue_delay_us < 0:
        raise FakeLocatorError("instance count and version must be >= 1 and the queue delay >= 0")
    if model.batch_limits is not None:
        lo, opt, hi = model.batch_limits
        if lo != 1:
            raise FakeLocatorError(
                f"engine {model.path}: its profile starts at batch {lo}; Triton sends any batch from 1, rebuild with --batch 1,{opt},{hi}"
            )
        max_batch = hi if options.max_batch_size is None else options.max_batch_size
        if max_batch > hi:
            raise FakeLocatorError(f"max_batch_size {max_batch} exceeds the engine profile's max batch {hi}")
        preferred = tuple(sorted({opt, max_batch})) if options.preferred_batch_sizes is None else options.preferred_batch_sizes
    else:
        max_batch = DEFAULT_ONNX_MAX_BATCH if options.max_batch_size is None else options.max_batch_size
        preferred = () if options.preferred_batch_sizes is None else options.preferred_batch_sizes
    if max_batch < 1:
        raise FakeLocatorError(f"max_batch_size must be >= 1, got {max_batch}")
    bad = [b for b in preferred if not 1 <= b <= max_batch]
    if bad:
        raise FakeLocatorError(f"preferred batch sizes {bad} are outside 1..max_batch_size {max_batch}")
    return max_batch, tuple(sorted(set(preferred)))


def model_config(model: ServedModel, options: TritonOptions = TritonOptions()) -> str:
    """The ``config.pbtxt`` text for ``model``."""
    max_batch, preferred = _resolve(model, options)
    outputs = [t for t in model.outputs if options.features or t.name != "features"]
    lines = [
        f"# written by fakelocator export triton from {model.path.name}",
        f"name: {_string(options.name)}",
        f"backend: {_string(model.backend)}",
        f"max_batch_size: {max_batch}",
        f"default_model_filename: {_string(model.filename)}",
    ]
    for section, tensors in (("input", model.inputs), ("output", outputs)):
        lines.append(f"{section} [")
        body = [
            f"  {{\n    name: {_string(t.name)}\n    data_type: {t.data_type}\n    dims: {_dims(t.dims)}\n  }}" for t in tensors
        ]
        lines.append(",\n".join(body))
        lines.append("]")
    lines.append("dynamic_batching {")
    if preferred:
        lines.append(f"  preferred_batch_size: {_dims(preferred)}")
    lines.append(f"  max_queue_delay_microseconds: {options.max_queue_delay_us}")
    lines.append("}")
    group = [f"    count: {options.instance_count}", f"    kind: {KINDS[options.instance_kind]}"]
    if options.gpus:
        group.append(f"    gpus: {_dims(options.gpus)}")
    lines += ["instance_group [", "  {", *group, "  }", "]"]
    if options.warmup:
        image = model.inputs[0]
        h, w = model.contract_size
        dims = [d if d >= 0 else size for d, size in zip(image.dims, (3, h, w))]
        lines += [
            "model_warmup [",
            "  {",
            '    name: "random_batch_1"',
            "    batch_size: 1",
            "    inputs {",
            f"      key: {_string(image.name)}",
            "      value {",
            f"        data_type: {image.data_type}",
            f"        dims: {_dims(dims)}",
            "        random_data: true",
            "      }",
            "    }",
            "  }",
            "]",
        ]
    for key in sorted(model.parameters):
        lines += [
            "parameters {",
            f"  key: {_string(key)}",
            f"  value {{ string_value: {_string(model.parameters[key])} }}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def write_repository(model_path: str | Path, repo: str | Path, options: TritonOptions = TritonOptions(), *, overwrite: bool = False) -> Path:
    """Write (or, with ``overwrite``, replace) ``repo/<name>/``; returns that folder."""
    model = describe_model(model_path)
    text = model_config(model, options)
    folder = Path(repo) / options.name
    if (folder / "config.pbtxt").exists() and not overwrite:
        raise FakeLocatorError(f"{folder} already holds a model; choose another --name or pass --overwrite")
    version_dir = folder / str(options.version)
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.path, version_dir / model.filename)
    if model.backend == "tensorrt":
        shutil.copyfile(sidecar_path(model.path), folder / "engine.json")
    (folder / "config.pbtxt").write_text(text)
    return folder
