"""The Triton Python-backend models of a repository written by ``fakelocator export triton``.

Each repository's ``model.py`` imports one of these as ``TritonPythonModel``:

- ``PipelineModel``: encoded images in (TYPE_STRING, one per row of a batch), and per image the map
  at the image's own height x width, its shape, the score, the label and the error. It runs the
  runtime's own ``Locator`` (decoding, the contract's ``fit`` resize or ``native`` tiles — the
  model's analysis, or the one the repository was exported with — batching,
  upsampling or stitching, per-image errors), whose backend sends each network batch to the network
  model by BLS (``fakelocator.runtime.backends.triton_bls``). All requests of one execution (Triton's
  dynamic batcher hands it several) are analysed as one stream, so their crops share network batches.
- ``NetworkModel``: the network on the runtime's onnxruntime backend, for a Triton without the
  onnxruntime backend (``--model-backend python``). It concatenates the requests the dynamic batcher
  hands it into one inference.

A request's bad image (not decodable, empty, too large, too small, or a side over the native
library's limit, analysed by the numpy path) gets its ``error`` and no map; the other images of the
request and of the batch are analysed. A failure of the whole execution (the network model
unreachable) is an error response for every request in it, each with a ``TritonError`` of its own.

A request Triton marks cancelled (a gRPC client's cancel or expired deadline; Python backend
23.10+, ``request.is_cancelled()``) stops being analysed at its next image and gets a CANCELLED
error response, so abandoned requests do not hold the instance to their end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.metadata import CONFIG_KEY, PREPROCESSING_KEY, ModelMetadata
from fakelocator.runtime.backends.triton_bls import Cancelled
from fakelocator.runtime.levels import map_levels

# The served models' parameters: fakelocator.export.triton writes them (importing these names).
NETWORK_MODEL_KEY = "fakelocator.network_model"
NETWORK_INPUT_DTYPE_KEY = "fakelocator.network_input_dtype"
NETWORK_MAX_BATCH_KEY = "fakelocator.network_max_batch"
MAP_DTYPE_KEY = "fakelocator.map_dtype"
WORKERS_KEY = "fakelocator.workers"
ANALYSIS_KEY = "fakelocator.analysis"  # "fit" | "native" | "" (the model's)
TILE_OVERLAP_KEY = "fakelocator.tile_overlap"  # "" : the model's
TILE_POOLING_KEY = "fakelocator.tile_pooling"  # "" : the model's
MAX_TILES_KEY = "fakelocator.max_tiles"  # "" : the runtime's default; "0": no limit
FAILED_SCORE = -1.0  # the score output of an image that could not be analysed (its error output says why)
MODEL_FILE_KEY = "fakelocator.model_file"
THREADS_KEY = "fakelocator.threads"

MAP_DTYPES = ("uint8", "float16")


def parameters(model_config: dict) -> dict[str, str]:
    """The string parameters of a model config as Triton hands it to ``initialize`` (JSON-decoded)."""
    return {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}


def encode_maps(maps: list[np.ndarray | None], dtype: str) -> np.ndarray:
    """Per-image (H_i, W_i) float32 maps in [0, 1] (None for a failed image) → one (N, H_max, W_max)
    array, each map in the top-left corner and zeros elsewhere: uint8 as its levels
    (``levels.map_levels``: byte for byte the PNG trt-locate writes), or float16. A uint8 map is
    taken as its levels already."""
    h = max((m.shape[0] for m in maps if m is not None), default=0)
    w = max((m.shape[1] for m in maps if m is not None), default=0)
    out = np.zeros((len(maps), h, w), np.uint8 if dtype == "uint8" else np.float16)
    for i, m in enumerate(maps):
        if m is None:
            continue
        if dtype == "uint8":
            out[i, : m.shape[0], : m.shape[1]] = m if m.dtype == np.uint8 else map_levels(m)
        else:
            out[i, : m.shape[0], : m.shape[1]] = m.astype(np.float16)
    return out


#: What the pipeline is handed in place of a cancelled request's image: not decodable, so it costs
#: nothing and gets an error record, which the cancelled response never shows.
_SKIPPED = b""


def _is_cancelled(request) -> bool:
    """Whether Triton marked ``request`` cancelled (Python backend 23.10+; older ones cannot say)."""
    check = getattr(request, "is_cancelled", None)
    if check is None:
        return False
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a backend that cannot tell: treat as live
        return False


def _cancelled_code(pb):
    """TritonError.CANCELLED where the backend has it (23.10+)."""
    return getattr(pb.TritonError, "CANCELLED", getattr(pb.TritonError, "UNKNOWN", 0))


class PipelineModel:
    """Triton's ``TritonPythonModel`` for the pipeline (see the module docstring)."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils

        from fakelocator.runtime.backends.base import ModelInfo
        from fakelocator.runtime.backends.triton_bls import TritonBLSBackend
        from fakelocator.runtime.locator import Locator

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        params = parameters(config)
        contract = Preprocessing.from_json(params[PREPROCESSING_KEY])
        # The model's calibrated threshold is its metadata's (fakelocator.threshold), unless the
        # repository was exported with another; the Locator resolves the run from this info (RunSpec).
        info = ModelInfo(
            path=f"triton:{params[NETWORK_MODEL_KEY]}", format="triton", preprocessing=contract,
            config=json.loads(params.get(CONFIG_KEY, "{}") or "{}"),
            threshold=ModelMetadata.from_props(params, source=f"Triton model {config.get('name')}").threshold,
        )
        max_batch = int(params[NETWORK_MAX_BATCH_KEY])
        backend = TritonBLSBackend(params[NETWORK_MODEL_KEY], info, max_batch=max_batch,
                                   input_dtype=params.get(NETWORK_INPUT_DTYPE_KEY, "TYPE_FP32"), pb_utils=pb_utils)
        self.map_dtype = params.get(MAP_DTYPE_KEY, "uint8")
        if self.map_dtype not in MAP_DTYPES:
            raise ValueError(f"{MAP_DTYPE_KEY} must be one of {MAP_DTYPES}, got {self.map_dtype!r}")
        workers = int(params.get(WORKERS_KEY, "0")) or None
        analysis = {}
        if params.get(ANALYSIS_KEY):
            analysis["analysis"] = params[ANALYSIS_KEY]
        if params.get(TILE_OVERLAP_KEY):
            analysis["tile_overlap"] = int(params[TILE_OVERLAP_KEY])
        if params.get(TILE_POOLING_KEY):
            analysis["tile_pooling"] = params[TILE_POOLING_KEY]
        if params.get(MAX_TILES_KEY):
            analysis["max_tiles"] = int(params[MAX_TILES_KEY]) or None
        self.backend = backend
        self.locator = Locator(backend, batch_size=max_batch, workers=workers, pipeline="host", **analysis)
        self.name = config.get("name", "fakelocator")

    def execute(self, requests: list) -> list:
        pb = self._pb
        inputs = []  # per request: its images, (n, 1) object array of bytes
        for request in requests:
            inputs.append(pb.get_input_tensor_by_name(request, "image").as_numpy())
        cancelled = [False] * len(requests)  # requests found cancelled; their images are not analysed

        def items():
            """Each live request's images, in order; a request is checked for cancellation (its client
            hung up, or its gRPC deadline passed) before each of its images is taken, so an abandoned
            request stops being analysed instead of holding the queue to its end."""
            for r, (request, images) in enumerate(zip(requests, inputs)):
                for value in images.reshape(-1):
                    if cancelled[r] or _is_cancelled(request):
                        cancelled[r] = True
                        yield _SKIPPED
                    else:
                        yield bytes(value)

        # every request gone (hung up, deadline passed): even a large image's remaining tiles are dropped
        self.backend.stop_when = lambda: all(c or _is_cancelled(r) for c, r in zip(cancelled, requests))
        try:
            results = list(self.locator.locate_iter(items(), on_error="record"))
        except Exception as e:  # noqa: BLE001 - the whole execution failed (e.g. the network model): every request says why
            message = f"{self.name}: {type(e).__name__}: {e}"
            # one TritonError per response: the backend frees an error's message with the response
            # that carries it, so an error shared by two responses is read after it is freed
            return [pb.InferenceResponse(output_tensors=[], error=pb.TritonError(message, _cancelled_code(pb))
                                         if isinstance(e, Cancelled) else pb.TritonError(message)) for _ in requests]
        finally:
            self.backend.stop_when = None
        responses, start = [], 0
        for request, images, gone in zip(requests, inputs, cancelled):
            n = images.shape[0]
            part = results[start: start + n]
            start += n
            if gone or _is_cancelled(request):
                responses.append(pb.InferenceResponse(
                    output_tensors=[], error=pb.TritonError(f"{self.name}: request cancelled", _cancelled_code(pb))))
                continue
            wanted = set(request.requested_output_names()) or {"map", "shape", "score", "label", "error"}
            responses.append(pb.InferenceResponse(output_tensors=self._outputs(part, wanted)))
        return responses

    def _outputs(self, results: list, wanted: set[str]) -> list:
        pb = self._pb
        n = len(results)
        tensors = []
        if "map" in wanted:
            tensors.append(pb.Tensor("map", encode_maps([r.map for r in results], self.map_dtype)))
        if "shape" in wanted:
            shape = np.array([[r.height or 0, r.width or 0] if r.ok else [0, 0] for r in results], np.int32).reshape(n, 2)
            tensors.append(pb.Tensor("shape", shape))
        if "score" in wanted:
            # -1, not NaN, for an image that failed (its error says why): Triton's JSON would carry a bare NaN,
            # which strict JSON parsers reject
            score = np.array([r.score if r.ok else FAILED_SCORE for r in results], np.float32).reshape(n, 1)
            tensors.append(pb.Tensor("score", score))
        if "label" in wanted:
            tensors.append(pb.Tensor("label", np.array([(r.label or "").encode() for r in results], np.object_).reshape(n, 1)))
        if "error" in wanted:
            tensors.append(pb.Tensor("error", np.array([(r.error or "").encode() for r in results], np.object_).reshape(n, 1)))
        return tensors

    def finalize(self) -> None:
        self.locator.close()


class NetworkModel:
    """Triton's ``TritonPythonModel`` for the network on the runtime's onnxruntime backend."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils

        from fakelocator.runtime.backends import load_backend

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        params = parameters(config)
        path = Path(args["model_repository"]) / str(args["model_version"]) / params.get(MODEL_FILE_KEY, "model.onnx")
        gpu = args.get("model_instance_kind") == "GPU"
        device = f"cuda:{args.get('model_instance_device_id', 0)}" if gpu else "cpu"
        self.backend = load_backend(path, "onnxruntime", device=device, threads=int(params.get(THREADS_KEY, "0")))
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:
        pb = self._pb
        batches = [pb.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]  # each (n_i, 3, h, w)
        try:
            out = self.backend.infer(np.concatenate(batches) if len(batches) > 1 else batches[0])
        except Exception as e:  # noqa: BLE001 - reported to every request of the batch
            message = f"ONNX Runtime inference failed: {type(e).__name__}: {e}"
            # one TritonError per response: the backend frees an error's message with the response
            # that carries it, so an error shared by two responses is read after it is freed
            return [pb.InferenceResponse(output_tensors=[], error=pb.TritonError(message)) for _ in requests]
        responses, start = [], 0
        for request, batch in zip(requests, batches):
            stop = start + len(batch)
            wanted = set(request.requested_output_names()) or set(self.outputs)
            tensors = [pb.Tensor(name, np.ascontiguousarray(out[name][start:stop])) for name in self.outputs
                       if name in wanted and name in out]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses

    def finalize(self) -> None:
        self.backend.close()
