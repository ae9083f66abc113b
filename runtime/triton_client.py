"""A client for the server-side pipeline of a Triton repository written by ``fakelocator export triton``.

    from fakelocator.runtime.triton_client import TritonClient

    with TritonClient("http://triton:8000") as client:        # or "grpc://triton:8001"
        results = client.locate([jpeg_bytes, "photo.png"])     # LocateResult per image, in order
        for r in results:
            print(r.source, r.score, r.label, r.error)         # r.map: float32 (H, W) in [0, 1]

The server decodes, preprocesses, infers and upsamples; the client sends encoded bytes (Triton's
binary tensor extension over HTTP, protobuf over gRPC) and gets back, per image, the map at the
image's own size, the score, the label and, for an image the server could not use, the reason
(``result.error``; the other images of the request are unaffected). Long lists are sent in requests
of at most the model's ``max_batch_size`` images.

``tritonclient`` is imported when a client is made (``pip install 'fakelocator[serve]'``). A client
is not thread-safe: make one per thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.runtime.decode import read_file
from fakelocator.runtime.results import BBOX_LEVEL, LocateResult, bbox_of
from fakelocator.metadata import THRESHOLD_KEY

OUTPUTS = ("map", "shape", "score", "label", "error")
PROTOCOLS = ("http", "grpc")


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # "http" | "grpc"
    address: str  # host:port, as tritonclient takes it

    @classmethod
    def parse(cls, url: str, protocol: str | None = None) -> "Endpoint":
        """``http://host:port``, ``grpc://host:port``, or ``host:port`` with ``protocol`` (default http)."""
        if "://" in url:
            scheme, _, address = url.partition("://")
            scheme = scheme.lower()
            if scheme not in PROTOCOLS:
                raise FakeLocatorError(f"Triton URL {url!r}: the scheme must be http or grpc")
            if protocol is not None and protocol != scheme:
                raise FakeLocatorError(f"Triton URL {url!r} says {scheme}, but protocol {protocol!r} was asked for")
            protocol = scheme
        else:
            address = url
        protocol = protocol or "http"
        if protocol not in PROTOCOLS:
            raise FakeLocatorError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        address = address.rstrip("/")
        if not address or "/" in address:
            raise FakeLocatorError(f"Triton URL {url!r}: expected host:port")
        return cls(protocol, address)

    def __str__(self) -> str:
        return f"{self.protocol}://{self.address}"


class TritonClient:
    """One connection to a Triton server's pipeline model.

    Args:
        url: ``http://host:port`` (HTTP/REST, port 8000 by default on the server) or
            ``grpc://host:port`` (8001); a bare ``host:port`` takes ``protocol``.
        model: the pipeline model's name.
        timeout_s: how long one request (connection included) may take.
        protocol: "http" or "grpc" for a bare ``host:port``.
        max_batch: images per request; default the model's ``max_batch_size`` (asked from the server).
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, model: str = "fakelocator", timeout_s: float = 60.0,
                 protocol: str | None = None, max_batch: int | None = None):
        if timeout_s <= 0:
            raise FakeLocatorError(f"timeout must be > 0 s, got {timeout_s}")
        self.endpoint = Endpoint.parse(url, protocol)
        self.model = model
        self.timeout_s = float(timeout_s)
        self._max_batch = max_batch
        self._threshold: float | None = None
        try:
            if self.endpoint.protocol == "http":
                import tritonclient.http as module

                self._client = module.InferenceServerClient(
                    self.endpoint.address, connection_timeout=self.timeout_s, network_timeout=self.timeout_s)
            else:
                import tritonclient.grpc as module

                self._client = module.InferenceServerClient(self.endpoint.address)
        except ImportError as e:
            raise FakeLocatorError(f"the Triton client needs tritonclient ({e}): pip install 'fakelocator[serve]'") from None
        self._module = module

    def _call(self, what: str, fn, *args, **kwargs):
        """``fn(...)`` with tritonclient's and the transport's exceptions turned into one clear error."""
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs)
        except InferenceServerException as e:
            message = e.message() or str(e)
            if "DEADLINE_EXCEEDED" in str(e.status()) or "Deadline Exceeded" in message:
                message = f"timed out after {self.timeout_s:g} s"
            raise FakeLocatorError(f"Triton {self.endpoint} model {self.model}: {what}: {message}") from None
        except Exception as e:  # noqa: BLE001 - geventhttpclient and sockets raise many types
            name = type(e).__name__
            reason = f"timed out after {self.timeout_s:g} s" if "timeout" in name.lower() else f"{name}: {e}"
            raise FakeLocatorError(f"Triton {self.endpoint} model {self.model}: {what}: {reason}") from None

    def _grpc_kwargs(self) -> dict:
        return {"client_timeout": self.timeout_s} if self.endpoint.protocol == "grpc" else {}

    # ---- server --------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether the server is up and the model is ready."""
        try:
            return bool(self._call("readiness", self._client.is_model_ready, self.model, **self._grpc_kwargs()))
        except FakeLocatorError:
            return False

    def config(self) -> dict:
        """The pipeline model's configuration, as JSON-like dicts (both protocols)."""
        if self.endpoint.protocol == "http":
            return self._call("model config", self._client.get_model_config, self.model)
        from google.protobuf.json_format import MessageToDict

        response = self._call("model config", self._client.get_model_config, self.model, **self._grpc_kwargs())
        return MessageToDict(response.config, preserving_proto_field_name=True)

    def statistics(self, model: str | None = None) -> dict:
        """The server's inference statistics of ``model`` (default: the pipeline model), as a dict:
        ``model_stats[0]`` has ``inference_count``, ``execution_count`` and ``batch_stats`` (one entry
        per batch size the model actually ran)."""
        name = model or self.model
        if self.endpoint.protocol == "http":
            return self._call("statistics", self._client.get_inference_statistics, name)
        response = self._call("statistics", self._client.get_inference_statistics, name, **self._grpc_kwargs())
        return message_to_dict(response)

    @property
    def max_batch(self) -> int:
        if self._max_batch is None:
            self._max_batch = max(1, int(self.config().get("max_batch_size", 1) or 1))
        return self._max_batch

    @property
    def threshold(self) -> float:
        """The served pipeline's decision threshold (its ``fakelocator.threshold`` parameter): the level
        whose box results' ``bbox`` is, as in the runtime."""
        if self._threshold is None:
            parameters = self.config().get("parameters", {}) or {}
            value = (parameters.get(THRESHOLD_KEY) or {}).get("string_value")
            self._threshold = float(value) if value else BBOX_LEVEL
        return self._threshold

    # ---- locate -----------------------------------------------------------------------------------

    def locate(self, images: Sequence[bytes | str | os.PathLike] | Iterable, *, maps: bool = True) -> list[LocateResult]:
        """Analyse encoded images (bytes) or image files (paths, read here and sent as bytes).

        Returns one ``LocateResult`` per input, in order: ``map`` (float32 (H, W) in [0, 1], unless
        ``maps=False``), ``score``, ``label``, ``bbox``, ``width``, ``height``; or ``error`` saying why
        this input could not be analysed (unreadable file, not an image, ...). A failure of the
        request itself (server unreachable, timeout, model not ready) raises FakeLocatorError.
        """
        items = list(images)
        results: list[LocateResult | None] = [None] * len(items)
        payload: list[tuple[int, str, bytes]] = []
        for i, item in enumerate(items):
            if isinstance(item, (bytes, bytearray, memoryview)):
                payload.append((i, f"<bytes {i}>", bytes(item)))
                continue
            if not isinstance(item, (str, os.PathLike)):
                results[i] = LocateResult(f"<input {i}>", error=f"expected bytes or a path, got {type(item).__name__}")
                continue
            source = os.fspath(item)
            try:
                payload.append((i, source, read_file(source)))
            except InputError as e:
                results[i] = LocateResult(source, error=e.reason)
        step = self.max_batch
        for start in range(0, len(payload), step):
            chunk = payload[start: start + step]
            for (i, source, _), result in zip(chunk, self._request([data for _, _, data in chunk], [s for _, s, _ in chunk], maps)):
                results[i] = result
        return results

    def infer(self, blobs: Sequence[bytes], *, maps: bool = True) -> dict[str, np.ndarray]:
        """One request with these encoded images; the outputs as Triton returns them: ``map`` (N, H_max,
        W_max) uint8 or float16 (unless ``maps=False``), ``shape`` (N, 2) int32, ``score`` (N, 1) float32,
        ``label`` and ``error`` (N, 1) bytes. ``locate`` builds its results from this."""
        m = self._module
        n = len(blobs)
        if n < 1:
            raise FakeLocatorError("a request needs at least one image")
        data = np.empty((n, 1), np.object_)
        for i, blob in enumerate(blobs):
            data[i, 0] = bytes(blob)
        tensor = m.InferInput("image", [n, 1], "BYTES")
        tensor.set_data_from_numpy(data)
        names = [o for o in OUTPUTS if maps or o != "map"]
        if self.endpoint.protocol == "http":
            outputs = [m.InferRequestedOutput(o, binary_data=True) for o in names]
        else:
            outputs = [m.InferRequestedOutput(o) for o in names]
        response = self._call(f"inference of {n} image(s)", self._client.infer, self.model, [tensor], outputs=outputs,
                              **self._grpc_kwargs())
        return {name: response.as_numpy(name) for name in names}

    def _request(self, blobs: list[bytes], sources: list[str], maps: bool) -> list[LocateResult]:
        n = len(blobs)
        out = self.infer(blobs, maps=maps)
        shape = out["shape"].reshape(n, 2)
        score = out["score"].reshape(n)
        label = out["label"].reshape(n)
        error = out["error"].reshape(n)
        full = out.get("map")  # (n, H_max, W_max) uint8 or float16
        results = []
        for i in range(n):
            message = _text(error[i])
            if message:
                results.append(LocateResult(sources[i], error=message))
                continue
            h, w = int(shape[i, 0]), int(shape[i, 1])
            fakeness = None
            if full is not None:
                crop = full[i, :h, :w]
                fakeness = crop.astype(np.float32) / 255.0 if crop.dtype == np.uint8 else crop.astype(np.float32)
            results.append(LocateResult(
                sources[i], map=fakeness, score=float(score[i]), label=_text(label[i]),
                bbox=bbox_of(fakeness, self.threshold) if fakeness is not None else None, width=w, height=h,
            ))
        return results

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def locate(images: Sequence[bytes | str | os.PathLike], url: str = "http://127.0.0.1:8000", *, model: str = "fakelocator",
           timeout_s: float = 60.0, maps: bool = True) -> list[LocateResult]:
    """One-shot ``TritonClient(url, model=..., timeout_s=...).locate(images)``."""
    with TritonClient(url, model=model, timeout_s=timeout_s) as client:
        return client.locate(images, maps=maps)


def message_to_dict(message) -> dict:
    """A protobuf message as the dict Triton's HTTP endpoint returns: ``MessageToDict`` writes 64-bit
    integers as strings (proto3's JSON mapping), HTTP's JSON has numbers; here they are ints again."""
    from google.protobuf.json_format import MessageToDict

    out = MessageToDict(message, preserving_proto_field_name=True)
    _int64_as_int(message.DESCRIPTOR, out)
    return out


def _int64_as_int(descriptor, values: dict) -> None:
    from google.protobuf.descriptor import FieldDescriptor as F

    wide = (F.CPPTYPE_INT64, F.CPPTYPE_UINT64)
    for key, value in values.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                if entry.message_type is not None:
                    _int64_as_int(entry.message_type, v)
                elif entry.cpp_type in wide:
                    value[k] = int(v)
        elif field.message_type is not None:
            for item in value if isinstance(value, list) else [value]:
                _int64_as_int(field.message_type, item)
        elif field.cpp_type in wide:
            values[key] = [int(v) for v in value] if isinstance(value, list) else int(value)
