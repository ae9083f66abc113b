"""The Triton Python-backend models and the BLS backend, run in-process against a stand-in for
Triton's ``triton_python_backend_utils`` (the real server runs them in test_triton_server.py)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.levels import map_levels
from fakelocator.runtime.triton_models import encode_maps

ROOT = Path(__file__).parents[2]
#: Six demo samples (the two real views, 259–427 px a side, and the four trained-generator edits,
#: 186–256 px), whatever samples/ gains later.
SAMPLES = sorted(p for p in (ROOT / "samples").glob("*.png") if p.name.startswith(("trained-", "real-")))


def crops(contract, height: int, width: int) -> int:
    """Network inputs one image takes under ``contract``: 1 in fit analysis, its tiles in native."""
    from fakelocator.tiling import TileGrid

    if contract.analysis != "native":
        return 1
    grid = TileGrid.of(height, width, contract.height, contract.width, contract.tile_overlap)
    return len(grid.ys) * len(grid.xs)


def fake_pb_utils() -> types.ModuleType:
    """What the models use of ``triton_python_backend_utils``; BLS requests go to ``pb.MODELS[name]``."""
    pb = types.ModuleType("triton_python_backend_utils")
    pb.MODELS = {}
    pb.SENT = []  # (model, batch shape, dtype) of every BLS request

    class Tensor:
        def __init__(self, name, array):
            self._name, self._array = name, np.asarray(array)

        def name(self):
            return self._name

        def as_numpy(self):
            return self._array

    class TritonError:
        UNKNOWN, CANCELLED = 0, 12

        def __init__(self, message, code=0):
            self._message, self._code = message, code

        def message(self):
            return self._message

        def code(self):
            return self._code

    class InferenceResponse:
        def __init__(self, output_tensors, error=None):
            self.output_tensors, self._error = output_tensors, error

        def has_error(self):
            return self._error is not None

        def error(self):
            return self._error

    class Request:
        def __init__(self, inputs, requested=(), cancelled=lambda: False):
            self.inputs, self.requested, self.cancelled = inputs, list(requested), cancelled

        def requested_output_names(self):
            return self.requested

        def is_cancelled(self):
            return self.cancelled()

    class InferenceRequest:
        def __init__(self, model_name, inputs, requested_output_names, timeout=0):
            self.model_name, self.inputs, self.requested = model_name, inputs, requested_output_names

        def exec(self):
            pb.SENT.append((self.model_name, self.inputs[0].as_numpy().shape, self.inputs[0].as_numpy().dtype))
            return pb.MODELS[self.model_name].execute([Request(self.inputs, self.requested)])[0]

    def by_name(tensors, name):
        return next((t for t in tensors if t.name() == name), None)

    pb.Tensor, pb.TritonError, pb.InferenceResponse, pb.Request, pb.InferenceRequest = (
        Tensor, TritonError, InferenceResponse, Request, InferenceRequest)
    pb.get_input_tensor_by_name = lambda request, name: by_name(request.inputs, name)
    pb.get_output_tensor_by_name = lambda response, name: by_name(response.output_tensors, name)
    return pb


LEGACY_FIT_MODEL = Path(__file__).resolve().parents[1] / "data" / "legacy_fit_model.onnx"

@pytest.fixture
def serve(tmp_path, monkeypatch):
    """A function: TritonOptions → (pb, pipeline model, network model) from a repository of a `fit` model
    with 224² inputs (the first default model, kept in tests/data; the shapes below are its)."""
    from fakelocator.export.triton import TritonOptions, parse_config, write_repository
    from fakelocator.runtime.triton_models import NetworkModel, PipelineModel

    pb = fake_pb_utils()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb)
    started = []

    def start(model=LEGACY_FIT_MODEL, **options):
        repo = tmp_path / f"repo{len(started)}"
        write_repository(model, repo, TritonOptions(model_backend="python", threads=1, **options))

        def args(name):
            config = parse_config((repo / name / "config.pbtxt").read_text())
            # Triton hands initialize() the config as JSON in protobuf's field names
            return {"model_config": json.dumps(MessageToDict(config, preserving_proto_field_name=True)),
                    "model_repository": str(repo / name), "model_version": "1", "model_instance_kind": "CPU"}

        network = NetworkModel()
        network.initialize(args("fakelocator_model"))
        pb.MODELS["fakelocator_model"] = network
        pipeline = PipelineModel()
        pipeline.initialize(args("fakelocator"))
        started.extend([pipeline, network])
        return pb, pipeline, network

    yield start
    for model in started:
        model.finalize()


@pytest.fixture
def served(serve):
    """(pb, pipeline model, network model), the network's max batch 4."""
    return serve(max_batch_size=4)


def request(pb, blobs, requested=(), cancelled=lambda: False):
    data = np.empty((len(blobs), 1), np.object_)
    for i, blob in enumerate(blobs):
        data[i, 0] = blob
    return pb.Request([pb.Tensor("image", data)], requested, cancelled)


def outputs(response) -> dict[str, np.ndarray]:
    assert not response.has_error(), response.error().message()
    return {t.name(): t.as_numpy() for t in response.output_tensors}


def test_the_pipeline_is_the_locators_pipeline(served):
    from fakelocator.runtime import Locator

    pb, pipeline, _ = served
    [response] = pipeline.execute([request(pb, [p.read_bytes() for p in SAMPLES])])
    out = outputs(response)
    with Locator.load(LEGACY_FIT_MODEL, device="cpu") as locator:
        want = locator.locate([str(p) for p in SAMPLES])
    assert out["map"].dtype == np.uint8 and out["map"].shape == (len(SAMPLES), max(r.height for r in want), max(r.width for r in want))
    for i, r in enumerate(want):
        assert out["shape"][i].tolist() == [r.height, r.width]
        assert abs(float(out["score"][i, 0]) - r.score) <= 1e-5
        assert out["label"][i, 0] == r.label.encode() and out["error"][i, 0] == b""
        served_map = out["map"][i, : r.height, : r.width]
        np.testing.assert_array_equal(served_map, map_levels(r.map))  # what trt-locate's PNG stores
        assert not out["map"][i, r.height:, :].any() and not out["map"][i, :, r.width:].any()  # padding is zero
    # the network got every crop, in batches no larger than its max_batch_size, as float32 (N, 3, h, w)
    contract = pipeline.locator.contract
    assert sum(shape[0] for _, shape, _ in pb.SENT) == sum(crops(contract, r.height, r.width) for r in want)
    assert all(1 <= shape[0] <= 4 and shape[1:] == (3, *contract.size) for _, shape, _ in pb.SENT)
    assert {dtype for _, _, dtype in pb.SENT} == {np.dtype(np.float32)}


def test_served_maps_are_trt_locates_png_maps_byte_for_byte(served, tmp_path):
    # One level rule (fakelocator.runtime.levels, half up): Triton's uint8 maps are the PNGs'.
    from fakelocator.runtime.cli import main

    pb, pipeline, _ = served
    out = tmp_path / "trt-locate"
    assert main([str(p) for p in SAMPLES] + ["--out", str(out), "--model", str(LEGACY_FIT_MODEL), "--device", "cpu",
                                             "--quiet"]) == 0
    written = {r["path"]: r["map"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    maps = outputs(pipeline.execute([request(pb, [p.read_bytes() for p in SAMPLES])])[0])["map"]
    for i, path in enumerate(SAMPLES):
        png = cv2.imread(str(out / written[str(path)]), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8
        np.testing.assert_array_equal(maps[i, :png.shape[0], :png.shape[1]], png)


def test_the_pipeline_labels_by_the_models_calibrated_threshold(serve, tmp_path):
    from helpers.models import build_red_model, with_threshold

    model = with_threshold(build_red_model(tmp_path / "red.onnx"), tmp_path / "red-0.7.onnx", 0.7)
    image = np.zeros((40, 48, 3), np.uint8)
    image[..., 2] = 190  # the red model scores it 0.63
    blob = cv2.imencode(".png", image)[1].tobytes()
    for options, label in (({}, b"real"), ({"threshold": 0.5}, b"fake")):  # the model's 0.7; an exported override
        pb, pipeline, _ = serve(model, **options)
        assert pipeline.locator.spec.threshold == (0.7 if not options else 0.5)
        out = outputs(pipeline.execute([request(pb, [blob])])[0])
        assert 0.5 < float(out["score"][0, 0]) < 0.7 and out["label"][0, 0] == label


def test_native_analysis_is_served_as_trt_locate_runs_it(serve):
    from fakelocator.runtime import Locator

    pb, pipeline, _ = serve(analysis="native", tile_pooling="mean", max_batch_size=8)
    assert pipeline.locator.contract.analysis == "native" and pipeline.locator.contract.tile_pooling == "mean"
    paths = SAMPLES[:3]  # a few hundred pixels a side: several tiles each
    out = outputs(pipeline.execute([request(pb, [p.read_bytes() for p in paths])])[0])
    with Locator.load(LEGACY_FIT_MODEL, device="cpu", analysis="native", tile_pooling="mean") as locator:
        want = locator.locate([str(p) for p in paths])
    tiles = sum(crops(pipeline.locator.contract, r.height, r.width) for r in want)
    assert tiles > len(paths) and sum(shape[0] for _, shape, _ in pb.SENT) == tiles  # every tile went to the network
    for i, r in enumerate(want):
        assert out["shape"][i].tolist() == [r.height, r.width]
        assert abs(float(out["score"][i, 0]) - r.score) <= 1e-5
        served_map = out["map"][i, : r.height, : r.width].astype(np.int16)
        assert np.abs(served_map - np.round(r.map * 255).astype(np.int16)).max() <= 1


def test_requests_of_one_execution_share_batches_and_get_their_own_results(served):
    pb, pipeline, _ = served
    good = SAMPLES[0].read_bytes()
    small = cv2.imencode(".png", np.full((20, 30, 3), 128, np.uint8))[1].tobytes()
    responses = pipeline.execute([request(pb, [good, b"not an image"]), request(pb, [small]),
                                  request(pb, [good], requested=["score", "error"])])
    contract = pipeline.locator.contract
    rows = 2 * crops(contract, *cv2.imdecode(np.frombuffer(good, np.uint8), cv2.IMREAD_COLOR).shape[:2]) + crops(contract, 20, 30)
    assert sum(s[0] for _, s, _ in pb.SENT) == rows  # the three decodable images of the three requests, in shared batches
    first, second, third = (outputs(r) for r in responses)
    assert first["map"].shape[0] == 2 and first["shape"].tolist()[1] == [0, 0]
    assert first["score"][1, 0] == -1.0 and first["label"][1, 0] == b""  # finite: strict JSON has no NaN
    assert b"not an image" in first["error"][1, 0] or b"format" in first["error"][1, 0]
    assert second["map"].shape == (1, 20, 30) and second["shape"].tolist() == [[20, 30]]
    assert set(third) == {"score", "error"}  # only what was asked for
    assert third["score"][0, 0] == pytest.approx(first["score"][0, 0], abs=1e-6)


def test_a_failing_network_fails_every_request_of_the_execution(served):
    pb, pipeline, network = served

    class Broken:
        def execute(self, requests):
            return [pb.InferenceResponse([], error=pb.TritonError("instance gone")) for _ in requests]

    pb.MODELS["fakelocator_model"] = Broken()
    responses = pipeline.execute([request(pb, [SAMPLES[0].read_bytes()]), request(pb, [SAMPLES[1].read_bytes()])])
    assert all(r.has_error() and "instance gone" in r.error().message() for r in responses)


def test_every_response_of_a_failed_execution_carries_an_error_of_its_own(served, monkeypatch):
    """Triton's Python backend frees an error's message with the response that carries it: one error
    object shared by two responses is read after it is freed (a garbled message for one client, then
    SIGSEGV in the server, issue 22)."""
    pb, pipeline, network = served

    class Broken:
        def execute(self, requests):
            return [pb.InferenceResponse([], error=pb.TritonError("instance gone")) for _ in requests]

    pb.MODELS["fakelocator_model"] = Broken()
    responses = pipeline.execute([request(pb, [SAMPLES[0].read_bytes()]) for _ in range(3)])
    assert len({id(r.error()) for r in responses}) == 3
    monkeypatch.setattr(network.backend, "infer", lambda x: 1 / 0)
    h, w = network.backend.info.preprocessing.size
    x = np.zeros((1, 3, h, w), np.float32)
    responses = network.execute([pb.Request([pb.Tensor("image", x)]) for _ in range(3)])
    assert all(r.has_error() for r in responses) and len({id(r.error()) for r in responses}) == 3


def test_an_image_over_the_native_limit_fails_nothing_else_of_its_execution(served):
    pb, pipeline, _ = served
    wide = cv2.imencode(".png", np.full((16, 40000, 3), 128, np.uint8))[1].tobytes()
    good = SAMPLES[0].read_bytes()
    first, second = (outputs(r) for r in pipeline.execute([request(pb, [good, wide]), request(pb, [good])]))
    assert first["error"][:, 0].tolist() == [b"", b""] and first["shape"].tolist()[1] == [16, 40000]
    assert second["score"][0, 0] == pytest.approx(first["score"][0, 0], abs=1e-6)


def test_a_cancelled_request_is_not_analysed_and_is_answered_cancelled(served):
    pb, pipeline, _ = served
    gone, live = pipeline.execute([request(pb, [SAMPLES[0].read_bytes()] * 3, cancelled=lambda: True),
                                   request(pb, [SAMPLES[1].read_bytes()])])
    assert gone.has_error() and gone.error().code() == pb.TritonError.CANCELLED
    assert "cancelled" in gone.error().message()
    assert outputs(live)["error"][0, 0] == b""
    assert sum(shape[0] for _, shape, _ in pb.SENT) == 1, "only the live request's image reached the network"


def test_a_large_image_stops_at_its_next_batch_once_every_request_is_cancelled(serve):
    """A client that hangs up on a large image (gRPC deadline, cancel) does not hold the instance
    for the rest of its tiles."""
    pb, pipeline, _ = serve(analysis="native", max_batch_size=4)
    large = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8))[1].tobytes()
    tiles = crops(pipeline.locator.contract, 1000, 1000)
    (response,) = pipeline.execute([request(pb, [large], cancelled=lambda: len(pb.SENT) >= 2)])
    assert response.has_error() and response.error().code() == pb.TritonError.CANCELLED
    assert sum(shape[0] for _, shape, _ in pb.SENT) == 8 < tiles
    assert outputs(pipeline.execute([request(pb, [SAMPLES[0].read_bytes()])])[0])["error"][0, 0] == b"", "it serves on"


def test_the_network_model_concatenates_the_batchers_requests(served):
    pb, _, network = served
    h, w = network.backend.info.preprocessing.size
    x = np.random.default_rng(0).standard_normal((3, 3, h, w)).astype(np.float32)
    together = outputs(network.execute([pb.Request([pb.Tensor("image", x)])])[0])
    apart = network.execute([pb.Request([pb.Tensor("image", x[:1])]), pb.Request([pb.Tensor("image", x[1:])], ["score"])])
    one, two = outputs(apart[0]), outputs(apart[1])
    assert set(one) == {"map", "score", "features"} and set(two) == {"score"}
    np.testing.assert_allclose(np.concatenate([one["score"], two["score"]]), together["score"], atol=1e-5)
    np.testing.assert_allclose(one["map"], together["map"][:1], atol=1e-5)


def test_encode_maps_rounds_pads_and_leaves_failures_empty():
    maps = [np.array([[0.0, 0.5], [1.0, 0.2]], np.float32), None, np.full((1, 3), 0.25, np.float32)]
    u8 = encode_maps(maps, "uint8")
    assert u8.shape == (3, 2, 3) and u8.dtype == np.uint8
    assert u8[0].tolist() == [[0, 128, 0], [255, 51, 0]] and not u8[1].any() and u8[2, 0].tolist() == [64, 64, 64]
    f16 = encode_maps(maps, "float16")
    assert f16.dtype == np.float16 and f16[0, 0, 1] == np.float16(0.5)
    assert encode_maps([None], "uint8").shape == (1, 0, 0)


def test_the_bls_backend_sends_the_network_input_type_and_reports_errors(served):
    from fakelocator.runtime.backends.triton_bls import TritonBLSBackend

    pb, pipeline, _ = served
    info = pipeline.locator.info
    h, w = info.preprocessing.size
    backend = TritonBLSBackend("fakelocator_model", info, max_batch=4, input_dtype="TYPE_FP16", pb_utils=pb)
    out = backend.infer(np.zeros((2, 3, h, w), np.float32))
    assert pb.SENT[-1] == ("fakelocator_model", (2, 3, h, w), np.dtype(np.float16))
    assert out["map"].shape == (2, 1, h, w) and out["score"].dtype == np.float32
    with pytest.raises(FakeLocatorError, match="input type TYPE_INT8"):
        TritonBLSBackend("m", info, max_batch=4, input_dtype="TYPE_INT8", pb_utils=pb)
    missing = TritonBLSBackend("nope", info, max_batch=4, pb_utils=pb)
    pb.MODELS["nope"] = types.SimpleNamespace(execute=lambda rs: [pb.InferenceResponse([], pb.TritonError("unknown model"))])
    with pytest.raises(FakeLocatorError, match="Triton model nope: inference of a batch of 1 failed: unknown model"):
        missing.infer(np.zeros((1, 3, h, w), np.float32))
