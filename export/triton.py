"""A Triton Inference Server model repository for an exported model: how a video platform runs it on
many GPUs and machines.

Layout (Triton's conventions: ``model.onnx`` for the onnxruntime backend, ``model.plan`` for the
tensorrt backend, ``model.py`` for the Python backend, numeric version folders)::

    REPO/<name>/config.pbtxt              the pipeline (Python backend, BLS): encoded images in,
    REPO/<name>/1/model.py                per image the map at its own H x W, its shape, score, label, error
    REPO/<name>_model/config.pbtxt        the network, with dynamic batching
    REPO/<name>_model/1/model.onnx | model.plan   (onnxruntime | tensorrt backend)
                   or 1/model.py + 1/model.onnx    (--model-backend python: the runtime's onnxruntime
                                                    backend inside Triton's Python backend)
    REPO/<name>_model/engine.json         (plan only: the engine's sidecar; Triton ignores it)

The pipeline model runs ``fakelocator.runtime``'s own ``Locator`` (decoding, ``fit`` resizing or
``native`` tiling, batching, upsampling or stitching, per-image errors: exactly ``trt-locate``'s), with
a backend that sends each network batch to ``<name>_model`` as a BLS request
(``fakelocator.runtime.triton_models``). With ``pipeline=False`` only the network is written, under
``<name>``: the raw tensor model of earlier versions, for clients that preprocess themselves.

Each ``config.pbtxt`` is built as Triton's own ``ModelConfig`` protobuf (``tritonclient``) and printed
with ``text_format``. The network's config declares ``max_batch_size``, the input ``image`` and
outputs ``map``, ``score`` (``features``) with their dims *without* the batch axis (-1 where
dynamic), dynamic batching with the queue delay and, when given, preferred batch sizes (Triton
recommends them only for TensorRT engines, so the plan defaults to its profile's opt and max and the
ONNX to none), instance groups (an ONNX runs on KIND_CPU unless GPUs are declared), optional warm-up,
and the preprocessing contract as the model parameter ``fakelocator.preprocessing`` so a client can
read it from the server (``get_model_config``).

A plan only runs on the TensorRT version it was built with: the one inside the Triton container
(see the NGC support matrix), so build it with that version or serve the ONNX.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.export.onnx_file import INPUT_NAME, OUTPUT_NAMES, read_onnx_info
from fakelocator.metadata import CONFIG_KEY, PRECISION_KEY, PREPROCESSING_KEY, THRESHOLD_KEY
from fakelocator.runtime.engine_sidecar import EngineSidecar, sidecar_path
from fakelocator.runtime.triton_models import (  # the parameters the served models read
    ANALYSIS_KEY, MAP_DTYPE_KEY, MAX_TILES_KEY, MODEL_FILE_KEY, NETWORK_INPUT_DTYPE_KEY, NETWORK_MAX_BATCH_KEY,
    NETWORK_MODEL_KEY, THREADS_KEY, TILE_OVERLAP_KEY, TILE_POOLING_KEY, WORKERS_KEY,
)

DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
MODEL_BACKENDS = ("auto", "onnxruntime", "tensorrt", "python")
MAP_DTYPES = {"uint8": "TYPE_UINT8", "float16": "TYPE_FP16"}
DEFAULT_ONNX_MAX_BATCH = 32



@dataclass(frozen=True)
class TritonOptions:
    """What goes into the repository beyond the tensors.

    Args:
        name: the pipeline model's name on the server; the network is ``<name>_model`` (with
            ``pipeline=False``, the network alone is ``<name>``).
        pipeline: write the server-side pipeline (bytes in, maps and scores out) beside the network.
        model_backend: the network's Triton backend: "auto" (tensorrt for a plan; for an ONNX,
            onnxruntime on GPU instances, python on the CPU, so that the server `fakelocator serve`
            brings serves it), "onnxruntime", "tensorrt", or "python" (an ONNX run by the
            runtime's onnxruntime backend inside Triton's Python backend: for a Triton without the
            onnxruntime backend, such as the one in the ``nvidia-pytriton`` wheel).
        max_batch_size: the largest network batch Triton forms; default: the engine profile's max
            batch, or 32 for an ONNX.
        preferred_batch_sizes: batch sizes the dynamic batcher aims for; None: the plan's profile
            opt and max, none for an ONNX.
        max_queue_delay_us: how long a network request may wait for others to batch with (microseconds).
        dynamic_batching: False writes no dynamic batcher (each request runs alone): for comparisons.
        instance_kind: "auto" (a plan on GPUs; an ONNX on GPUs when ``gpus`` are given, else on the
            CPU), "gpu" or "cpu".
        instance_count: network instances per GPU (or in all, on the CPU).
        gpus: GPU indices for the network instances; empty: every GPU.
        warmup: declare a warm-up request (random data, batch 1) so the network is ready only once warm.
        version: the version folder.
        features: also serve the ``features`` output when the model has it.
        map_dtype: the pipeline's map output: "uint8" (map x 255, rounded: what trt-locate writes)
            or "float16".
        pipeline_instances: pipeline model instances (processes) that decode and post-process in parallel.
        pipeline_max_batch: the most images one pipeline execution takes (requests are batched up to it).
        pipeline_queue_delay_us: how long a pipeline request may wait for others (microseconds).
        threshold: the score at or above which the label is "fake"; None: the model's calibrated
            threshold (its metadata's ``fakelocator.threshold``; 0.5 for a model that states none).
        threads: intra-op threads of a Python-backend network (0: ONNX Runtime's default).
        analysis, tile_overlap, tile_pooling: the pipeline's analysis ("fit" or "native") and tile
            options, as trt-locate's --analysis, --tile-overlap, --tile-pooling; None: the model's.
        max_tiles: ``native``: images that take more tiles get an error; None: the runtime's
            default; 0: no limit.
    """

    name: str = "fakelocator"
    pipeline: bool = True
    model_backend: str = "auto"
    max_batch_size: int | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    max_queue_delay_us: int = 2000
    dynamic_batching: bool = True
    instance_kind: str = "auto"
    instance_count: int = 1
    gpus: tuple[int, ...] = ()
    warmup: bool = True
    version: int = 1
    features: bool = True
    map_dtype: str = "uint8"
    pipeline_instances: int = 1
    pipeline_max_batch: int = 16
    pipeline_queue_delay_us: int = 5000
    threshold: float | None = None
    threads: int = 0
    analysis: str | None = None
    tile_overlap: int | None = None
    tile_pooling: str | None = None
    max_tiles: int | None = None

    @property
    def network_name(self) -> str:
        return f"{self.name}_model" if self.pipeline else self.name


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
            # the precision is declared (fp32, fp16 or int8: an INT8 QDQ ONNX is served like any ONNX)
            parameters={PREPROCESSING_KEY: metadata.preprocessing.to_json(), CONFIG_KEY: info.props.get(CONFIG_KEY, "{}"),
                        THRESHOLD_KEY: repr(float(metadata.threshold)), PRECISION_KEY: metadata.precision},
        )
    sidecar = EngineSidecar.read(sidecar_path(path))
    if not sidecar.io:
        raise FakeLocatorError(f"engine sidecar {sidecar_path(path)}: lists no I/O tensors; rebuild the engine")

    def tensor(t):
        if t["dtype"] not in DTYPES:
            raise FakeLocatorError(f"engine {path}: tensor {t['name']} has type {t['dtype']}, not float32/float16")
        return Tensor(t["name"], DTYPES[t["dtype"]], tuple(int(d) for d in t["shape"][1:]))

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
            THRESHOLD_KEY: repr(float(sidecar.threshold)),
            "fakelocator.tensorrt_version": sidecar.tensorrt_version,
            PRECISION_KEY: sidecar.precision,
        },
    )


def config_pb2():
    """Triton's ``model_config_pb2`` (from tritonclient), or FakeLocatorError saying how to install it."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        raise FakeLocatorError(f"Triton model configs are built with tritonclient ({e}): pip install 'fakelocator[triton]'") from None
    return model_config_pb2


def config_text(config, header: str) -> str:
    """``config`` (a ModelConfig) as ``config.pbtxt`` text, after a ``#`` comment line."""
    from google.protobuf import text_format

    return f"# {header}\n" + text_format.MessageToString(config)


def parse_config(text: str):
    """``config.pbtxt`` text → ModelConfig; FakeLocatorError when Triton would not parse it either."""
    from google.protobuf import text_format

    pb = config_pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as e:
        raise FakeLocatorError(f"not a valid Triton model config: {e}") from None


def network_backend(model: ServedModel, options: TritonOptions) -> str:
    """The Triton backend that serves the network: "onnxruntime", "tensorrt" or "python"."""
    choice = options.model_backend
    if choice not in MODEL_BACKENDS:
        raise FakeLocatorError(f"model backend must be one of {MODEL_BACKENDS}, got {choice!r}")
    if choice == "auto":
        # An ONNX on the CPU goes to the Python backend, which every Triton has, the one that
        # `fakelocator serve` brings (nvidia-pytriton's, Python backend only) included; on GPUs
        # (a full Triton) to Triton's own onnxruntime backend.
        if model.backend == "onnxruntime" and instance_kind(model, options) == "cpu":
            return "python"
        return model.backend
    if model.backend == "tensorrt" and choice != "tensorrt":
        raise FakeLocatorError(f"engine {model.path}: a plan is served by the tensorrt backend only; "
                               "serve its ONNX for the onnxruntime or python backend")
    if model.backend == "onnxruntime" and choice == "tensorrt":
        raise FakeLocatorError(f"model {model.path}: the tensorrt backend serves plans; build one with "
                               "`fakelocator export engine` (inside the Triton container's TensorRT version)")
    return choice


def instance_kind(model: ServedModel, options: TritonOptions) -> str:
    """"gpu" or "cpu": ``options.instance_kind`` with "auto" resolved (see TritonOptions)."""
    kind = options.instance_kind
    if kind == "auto":
        return "gpu" if model.backend == "tensorrt" or options.gpus else "cpu"
    if kind not in KINDS:
        raise FakeLocatorError(f"instance kind must be auto or one of {tuple(KINDS)}, got {kind!r}")
    return kind


def _resolve(model: ServedModel, options: TritonOptions) -> tuple[int, tuple[int, ...]]:
    """(max_batch_size, preferred batch sizes), checked against the model."""
    kind = instance_kind(model, options)
    if model.backend == "tensorrt" and kind != "gpu":
        raise FakeLocatorError("a TensorRT plan runs on GPUs only: use instance kind gpu, or serve the ONNX on the CPU")
    if kind == "cpu" and options.gpus:
        raise FakeLocatorError("gpus apply to GPU instances only")
    if options.instance_count < 1 or options.version < 1 or options.max_queue_delay_us < 0:
        raise FakeLocatorError("instance count and version must be >= 1 and the queue delay >= 0")
    if model.batch_limits is not None:
        lo, opt, hi = model.batch_limits
        if lo != 1:
            raise FakeLocatorError(
                f"engine {model.path}: its profile starts at batch {lo}; Triton sends any batch from 1, rebuild with --batch-range 1,{opt},{hi}"
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


def _tensor(message, tensor: Tensor, pb) -> None:
    message.name = tensor.name
    message.data_type = pb.DataType.Value(tensor.data_type)
    message.dims.extend(tensor.dims)


def _parameters(config, parameters: dict[str, str]) -> None:
    for key in sorted(parameters):
        config.parameters[key].string_value = parameters[key]


def _instances(config, kind: str, count: int, gpus: tuple[int, ...], pb) -> None:
    group = config.instance_group.add()
    group.count = count
    group.kind = pb.ModelInstanceGroup.Kind.Value(KINDS[kind])
    group.gpus.extend(gpus)


def model_config(model: ServedModel, options: TritonOptions = TritonOptions()):
    """The network's ``ModelConfig`` protobuf (served as ``options.network_name``)."""
    pb = config_pb2()
    max_batch, preferred = _resolve(model, options)
    backend = network_backend(model, options)
    config = pb.ModelConfig(name=options.network_name, backend=backend, max_batch_size=max_batch)
    parameters = dict(model.parameters)
    if backend == "python":
        parameters[MODEL_FILE_KEY] = model.filename
        parameters[THREADS_KEY] = str(options.threads)
    else:
        config.default_model_filename = model.filename
    for tensor in model.inputs:
        # The Python backend's network takes float32 and casts to the ONNX's own input type.
        _tensor(config.input.add(), Tensor(tensor.name, "TYPE_FP32", tensor.dims) if backend == "python" else tensor, pb)
    for tensor in model.outputs:
        if options.features or tensor.name != "features":
            _tensor(config.output.add(), Tensor(tensor.name, "TYPE_FP32", tensor.dims) if backend == "python" else tensor, pb)
    if options.dynamic_batching:
        config.dynamic_batching.preferred_batch_size.extend(preferred)
        config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    _instances(config, instance_kind(model, options), options.instance_count, options.gpus, pb)
    if options.warmup:
        image = config.input[0]
        h, w = model.contract_size
        warmup = config.model_warmup.add(name="random_batch_1", batch_size=1)
        entry = warmup.inputs[image.name]
        entry.data_type = image.data_type
        entry.dims.extend(d if d >= 0 else size for d, size in zip(image.dims, (3, h, w)))
        entry.random_data = True
    _parameters(config, parameters)
    return config


def pipeline_config(model: ServedModel, options: TritonOptions = TritonOptions()):
    """The pipeline model's ``ModelConfig``: encoded images in (TYPE_STRING, one per row), per image

    ``map`` (the map dtype, (H_max, W_max): each image's map at its own size in the top-left corner
    of the request's largest, zero elsewhere), ``shape`` (INT32 (2,): its H, W), ``score`` (FP32 (1,),
    NaN on error), ``label`` and ``error`` (STRING (1,), empty when not applicable).
    """
    pb = config_pb2()
    network_max_batch, _ = _resolve(model, options)
    if options.map_dtype not in MAP_DTYPES:
        raise FakeLocatorError(f"map dtype must be one of {tuple(MAP_DTYPES)}, got {options.map_dtype!r}")
    if options.pipeline_instances < 1 or options.pipeline_max_batch < 1 or options.pipeline_queue_delay_us < 0:
        raise FakeLocatorError("pipeline instances and max batch must be >= 1 and its queue delay >= 0")
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        raise FakeLocatorError(f"threshold must be in [0, 1], got {options.threshold}")
    if options.max_tiles is not None and options.max_tiles < 0:
        raise FakeLocatorError(f"max tiles must be >= 0 (0: no limit), got {options.max_tiles}")
    from fakelocator.contract import Preprocessing

    # The contract the pipeline will run, checked now (an overlap too large for the tile is refused here).
    Preprocessing.from_json(model.parameters[PREPROCESSING_KEY]).with_analysis(
        options.analysis, tile_overlap=options.tile_overlap, tile_pooling=options.tile_pooling)
    config = pb.ModelConfig(name=options.name, backend="python", max_batch_size=options.pipeline_max_batch)
    _tensor(config.input.add(), Tensor("image", "TYPE_STRING", (1,)), pb)
    for tensor in (
        Tensor("map", MAP_DTYPES[options.map_dtype], (-1, -1)),
        Tensor("shape", "TYPE_INT32", (2,)),
        Tensor("score", "TYPE_FP32", (1,)),
        Tensor("label", "TYPE_STRING", (1,)),
        Tensor("error", "TYPE_STRING", (1,)),
    ):
        _tensor(config.output.add(), tensor, pb)
    if options.dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = options.pipeline_queue_delay_us
    _instances(config, "cpu", options.pipeline_instances, (), pb)
    network_input = model.inputs[0].data_type if network_backend(model, options) != "python" else "TYPE_FP32"
    _parameters(config, {
        **model.parameters,
        NETWORK_MODEL_KEY: options.network_name,
        NETWORK_INPUT_DTYPE_KEY: network_input,
        NETWORK_MAX_BATCH_KEY: str(network_max_batch),
        MAP_DTYPE_KEY: options.map_dtype,
        **({} if options.threshold is None else {THRESHOLD_KEY: repr(float(options.threshold))}),
        WORKERS_KEY: "0",
        ANALYSIS_KEY: options.analysis or "",
        TILE_OVERLAP_KEY: "" if options.tile_overlap is None else str(options.tile_overlap),
        TILE_POOLING_KEY: options.tile_pooling or "",
        MAX_TILES_KEY: "" if options.max_tiles is None else str(options.max_tiles),
    })
    return config


# The model.py of a Python-backend model. Triton's Python backend stub embeds the system's
# libpython, whose sys.path knows nothing of a virtual environment: `fakelocator serve` passes its
# environment's site-packages folders in FAKELOCATOR_SITE_PACKAGES (added with site.addsitedir, so
# their .pth files, such as an editable install's, apply), ahead of the system's own packages.
MODEL_PY = '''"""Triton Python-backend model written by `fakelocator export triton`: {what}.

The code is {module}.{cls} (one contract with trt-locate, no copy). It needs fakelocator importable
by the Python backend: `fakelocator serve` arranges that; another server needs
`pip install 'fakelocator[runtime]'` in its Python, or FAKELOCATOR_SITE_PACKAGES set to the
site-packages folders (os.pathsep-separated) of an environment that has it.
"""

import os
import site
import sys


def _add_site_packages():
    folders = [p for p in os.environ.get("FAKELOCATOR_SITE_PACKAGES", "").split(os.pathsep) if p]
    before = list(sys.path)
    for folder in folders:
        site.addsitedir(folder)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before


_add_site_packages()
try:
    from {module} import {cls} as TritonPythonModel  # noqa: E402,F401
except ImportError as e:
    raise ImportError(
        f"fakelocator is not importable by Triton's Python backend (Python {{sys.version.split()[0]}}, "
        f"{{sys.executable}}): {{e}}; start the server with `fakelocator serve`, or pip install "
        "'fakelocator[runtime]' into this Python, or set FAKELOCATOR_SITE_PACKAGES"
    ) from e
'''

TRITON_MODELS = "fakelocator.runtime.triton_models"


def model_py(what: str, cls: str) -> str:
    return MODEL_PY.format(what=what, module=TRITON_MODELS, cls=cls)


def write_repository(model_path: str | Path, repo: str | Path, options: TritonOptions = TritonOptions(), *, overwrite: bool = False) -> Path:
    """Write (or, with ``overwrite``, replace) the repository's models; returns the served entry
    model's folder (``repo/<name>``: the pipeline, or the network alone with ``pipeline=False``)."""
    model = describe_model(model_path)
    network = model_config(model, options)
    backend = network.backend
    pipeline = pipeline_config(model, options) if options.pipeline else None
    repo = Path(repo)
    folders = [repo / options.network_name] + ([repo / options.name] if pipeline is not None else [])
    for folder in folders:
        if (folder / "config.pbtxt").exists() and not overwrite:
            raise FakeLocatorError(f"{folder} already holds a model; choose another --name or pass --overwrite")
    for folder in folders:
        if overwrite and folder.is_dir():
            shutil.rmtree(folder)  # no stale version folders or model files from an earlier export

    origin = f"written by fakelocator export triton from {model.path.name}"
    folder = repo / options.network_name
    version_dir = folder / str(options.version)
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.path, version_dir / model.filename)
    if backend == "python":
        (version_dir / "model.py").write_text(model_py(f"the network {model.filename} on ONNX Runtime", "NetworkModel"))
    if model.backend == "tensorrt":
        shutil.copyfile(sidecar_path(model.path), folder / "engine.json")
    (folder / "config.pbtxt").write_text(config_text(network, f"{origin} (the network, {backend} backend)"))
    if pipeline is None:
        return folder

    folder = repo / options.name
    (folder / str(options.version)).mkdir(parents=True, exist_ok=True)
    (folder / str(options.version) / "model.py").write_text(
        model_py(f"the pipeline (encoded images in; maps, scores out) around {options.network_name}", "PipelineModel"))
    (folder / "config.pbtxt").write_text(config_text(pipeline, f"{origin} (the pipeline: BLS to {options.network_name})"))
    return folder
