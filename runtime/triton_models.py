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

A request's bad image (not decodable, empty, too large) gets its ``error`` and no map; the other
images of the request and of the batch are analysed. A failure of the whole execution (the network
model unreachable) is an error response for every request in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.metadata import CONFIG_KEY, PREPROCESSING_KEY, ModelMetadata
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
        self.locator = Locator(backend, batch_size=max_batch, workers=workers, pipeline="host", **analysis)
        self.name = config.get("name", "fakelocator")

    def execute(self, requests: list) -> list:
        pb = self._pb
        items, counts = [], []
        for request in requests:
            images = pb.get_input_tensor_by_name(request, "image").as_numpy()  # (n, 1) object: bytes
            items.extend(bytes(v) for v in images.reshape(-1))
            counts.append(images.shape[0])
        try:
            results = list(self.locator.locate_iter(items, on_error="record"))
        except Exception as e:  # noqa: BLE001 - the whole execution failed (e.g. the network model): every request says why
            error = pb.TritonError(f"{self.name}: {type(e).__name__}: {e}")
            return [pb.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for request, n in zip(requests, counts):
            part = results[start: start + n]
            start += n
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
            error = pb.TritonError(f"ONNX Runtime inference failed: {type(e).__name__}: {e}")
            return [pb.InferenceResponse(output_tensors=[], error=error) for _ in requests]
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
