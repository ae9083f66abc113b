"""Ray Data: fakeness maps and scores for every row of a Dataset, one ``Locator`` per actor.

    import ray
    from fakelocator.integrations.ray import locate_dataset

    ds = ray.data.read_binary_files("s3://bucket/uploads/", include_paths=True)   # columns bytes, path
    out = locate_dataset(ds, "model.onnx", concurrency=4, num_gpus=1)              # one actor per GPU
    out.write_parquet("s3://bucket/fakelocator/")                                   # or iter_rows(), ...

Each input row (encoded image or video bytes in ``column``) becomes rows with the fields of a
``results.jsonl`` record (``fakelocator.runtime.results``: ``kind``, ``path``, ``frame``, ``score``,
``label``, ``width``, ``height``, ``bbox``, ``tiles``, ``error``, ...; see ``RESULT_FIELDS``) and
``map_png``: the map as the 8-bit gray PNG ``trt-locate`` writes (``outputs.encode_map``, the same
bytes). Columns of the input other than ``column`` and those fields are carried along (an upload's
id, say), so results can be joined back.

- **One model load per actor.** ``LocateBatches`` is the stateful callable Ray Data runs in an
  actor pool of ``concurrency`` actors; its constructor loads the ``Locator`` once, and every batch
  of ``batch_size`` rows then goes through ``Locator.locate_iter`` (decoding threads, crops of
  several images batched into one inference). The model is a path every worker can read (a shared
  file system, or baked into the image), the ONNX file's bytes (shipped through Ray's object
  store), or None for the embedded default model. With ``num_gpus`` > 0 each actor holds that many
  GPUs and the locator runs on ``cuda`` (Ray sets ``CUDA_VISIBLE_DEVICES`` per actor).
- **A bad input is a row, never a failed task.** Undecodable bytes, a null, an image over
  ``max_pixels``, a video that cannot be opened: a row with ``error`` set and no map, exactly as
  ``trt-locate`` records it. An exception that is not about one input (a bug, a lost GPU) still
  fails the task, so Ray can retry it.
- **Actors that die are replaced.** The pool's actors restart without limit and their tasks are
  retried (Ray Data's defaults for actor pools: ``max_restarts=-1``, ``max_task_retries=-1``); a
  batch's output is handed on only when its task finished, so a killed actor loses and doubles
  nothing (tests/integrations/test_ray.py kills one mid-run).
- **Videos: frames as rows.** A row whose ``path`` has a video suffix (``.mp4``, ``.avi``, ...; see
  ``runtime.decode.VIDEO_EXTENSIONS``) is read with ``Locator.locate_video`` (PyAV, from the bytes):
  one ``kind="frame"`` row per sampled frame (``every``, ``fps``, ``max_frames``) with its map, then
  one ``kind="video"`` row with the verdict (``summary``, JSON). A whole video is one row's work in
  one actor, so sample long videos (``fps=1``) or split them upstream. Without a path column, every
  row is taken as an image.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.data

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.runtime.decode import is_video_path
from fakelocator.runtime.locator import Locator
from fakelocator.runtime.outputs import encode_map
from fakelocator.runtime.results import LocateResult, VideoSummary

#: The depth of ``map_png``: trt-locate's default (map × 255, rounded; ``outputs.encode_map``).
MAP_DEPTH = 8

#: The output columns, in order: a results.jsonl record's fields (nested ones as JSON text) and the map.
RESULT_SCHEMA = pa.schema([
    ("kind", pa.string()),          # "image", "frame" (a sampled video frame) or "video" (its verdict)
    ("path", pa.string()),          # the input's path column; null without one
    ("frame", pa.int64()),          # frames: index in the video
    ("time_s", pa.float64()),       # frames: presentation time
    ("score", pa.float64()),
    ("label", pa.string()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("bbox", pa.list_(pa.int64())),  # [x0, y0, x1, y1], x1 and y1 exclusive; null when nothing is above 0.1
    ("tiles", pa.int64()),
    ("error", pa.string()),
    ("timings_ms", pa.map_(pa.string(), pa.float64())),
    ("summary", pa.string()),       # videos: the record's summary object, as JSON
    ("faces", pa.string()),         # with faces=...: the record's faces and regions, as JSON
    ("regions", pa.string()),
    ("map_png", pa.binary()),       # 8-bit gray PNG at the input's size; null on error and for videos
])
RESULT_FIELDS = tuple(RESULT_SCHEMA.names)


class LocateBatches:
    """The per-actor callable of ``locate_dataset``: a ``Locator`` loaded once, then ``pyarrow`` batches in, rows out.

    Args:
        model: a path every worker can read, an ONNX model's bytes, or None (the embedded default).
        column: the column of encoded bytes; ``path_column``: the column naming each input (optional).
        every, fps, max_frames: video frame sampling (``Locator.locate_video``).
        locator_options: ``Locator.load``'s keywords (``batch_size`` is the inference batch here).
    """

    def __init__(
        self,
        model: str | os.PathLike | bytes | None,
        *,
        column: str = "bytes",
        path_column: str = "path",
        every: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        locator_options: dict[str, Any] | None = None,
    ) -> None:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # decode failures become rows, not log noise
        self.column = column
        self.path_column = path_column
        self.sampling = dict(every=every, fps=fps, max_frames=max_frames)
        self._model_file = None
        if isinstance(model, (bytes, bytearray, memoryview)):  # an ONNX model shipped through the object store
            fd, self._model_file = tempfile.mkstemp(prefix="fakelocator-model-", suffix=".onnx")
            with os.fdopen(fd, "wb") as f:
                f.write(model)
            model = self._model_file
        self.locator = Locator.load(model, **(locator_options or {}))

    def __call__(self, batch: pa.Table) -> pa.Table:
        data, paths, errors = self.inputs(batch)
        per_input: list[list[dict[str, Any]]] = [[] for _ in data]
        images = []
        for i, (value, path, error) in enumerate(zip(data, paths, errors)):
            video = path is not None and is_video_path(path)
            if error is not None and video:  # recorded as trt-locate records a video it cannot open
                per_input[i].append(_row("video", VideoSummary(path, error=error).to_record(), path))
            elif error is not None:
                per_input[i].append(_row("image", _failed(path, error), path))
            elif video:
                per_input[i].extend(self._video(bytes(value), path))
            else:
                images.append(i)
        results = self.locator.locate_iter((data[i] for i in images), on_error="record")
        for i, result in zip(images, results):
            per_input[i].append(_image_row(result, paths[i]))
        rows = [row for rows in per_input for row in rows]
        origin = [i for i, rows in enumerate(per_input) for _ in rows]  # the input row of each output row
        table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
        carried = [c for c in batch.column_names if c != self.column and c not in RESULT_FIELDS]
        if carried:
            rest = batch.select(carried).take(pa.array(origin, pa.int64()))
            for name in carried:
                table = table.append_column(rest.schema.field(name), rest.column(name))
        return table

    def inputs(self, batch: pa.Table) -> tuple[list[Any], list[str | None], list[str | None]]:
        """(each row's encoded bytes, its path or None, why it has no usable bytes or None)."""
        if self.column not in batch.column_names:
            raise FakeLocatorError(f"locate_dataset: the dataset has no column {self.column!r} (columns: {batch.column_names})")
        data = batch.column(self.column).to_pylist()
        paths = batch.column(self.path_column).to_pylist() if self.path_column in batch.column_names else [None] * len(data)
        paths = [None if p is None else str(p) for p in paths]
        errors = [None if isinstance(v, (bytes, bytearray, memoryview)) else _not_bytes(self.column, v) for v in data]
        return data, paths, errors

    def _video(self, data: bytes, path: str) -> list[dict[str, Any]]:
        """One row per sampled frame and the verdict row; a video that cannot be read is one error row."""
        rows: list[dict[str, Any]] = []
        try:
            with self.locator.locate_video(data, **self.sampling) as video:
                for frame in video:
                    rows.append(_image_row(frame, path, kind="frame"))
                summary = video.summary
        except InputError as e:
            summary = VideoSummary(path, error=e.reason)
        except Exception as e:  # noqa: BLE001 - one broken video must not fail the batch
            summary = VideoSummary(path, error=f"cannot be decoded ({type(e).__name__}: {e})")
        record = summary.to_record()
        rows.append(_row("video", record, path))
        return rows

    def __del__(self) -> None:
        locator = getattr(self, "locator", None)
        if locator is not None:
            locator.close()
        if getattr(self, "_model_file", None):
            try:
                os.unlink(self._model_file)
            except OSError:
                pass


def _not_bytes(column: str, value: object) -> str:
    if value is None:
        return f"{column} is null"
    return f"{column} holds {type(value).__name__}, not encoded image bytes"


def _failed(path: str | None, reason: str) -> dict[str, Any]:
    return LocateResult(path or "", error=reason).to_record()


def _image_row(result: LocateResult, path: str | None, kind: str = "image") -> dict[str, Any]:
    record = result.to_record()
    png = None
    if result.error is None:
        try:
            png = encode_map(result.map, MAP_DEPTH)
        except OSError as e:
            record.update(error=f"cannot encode its map ({e})", score=None, label=None, bbox=None)
    result.map = result.image = None  # the row holds the PNG; let the float map go
    return _row(kind, record, path, png)


def _row(kind: str, record: dict[str, Any], path: str | None, map_png: bytes | None = None) -> dict[str, Any]:
    """A results.jsonl record (``to_record()``) as a row of ``RESULT_SCHEMA``."""
    def as_json(key: str) -> str | None:
        return json.dumps(record[key], separators=(",", ":")) if record.get(key) is not None else None

    return {
        "kind": kind,
        "path": path,
        "frame": record.get("frame"),
        "time_s": record.get("time_s"),
        "score": record.get("score"),
        "label": record.get("label"),
        "width": record.get("width"),
        "height": record.get("height"),
        "bbox": record.get("bbox"),
        "tiles": record.get("tiles"),
        "error": record.get("error"),
        "timings_ms": list((record.get("timings_ms") or {}).items()),
        "summary": as_json("summary"),
        "faces": as_json("faces"),
        "regions": as_json("regions"),
        "map_png": map_png,
    }


def actor_pool(concurrency: int | tuple[int, int]) -> "ray.data.ActorPoolStrategy":
    """``concurrency`` actors, or a (min, max) range that Ray Data scales within."""
    if isinstance(concurrency, tuple):
        low, high = concurrency
        return ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise FakeLocatorError(f"concurrency must be an integer >= 1 or a (min, max) pair, got {concurrency!r}")
    return ray.data.ActorPoolStrategy(size=concurrency)


def locate_dataset(
    ds: "ray.data.Dataset",
    model: str | os.PathLike | bytes | None = None,
    *,
    column: str = "bytes",
    path_column: str = "path",
    batch_size: int = 16,
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float = 0,
    num_cpus: float = 1,
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    inference_batch_size: int = 8,
    **locator_options: Any,
) -> "ray.data.Dataset":
    """Locate manipulations in every row of ``ds`` (lazy: nothing runs until the result is consumed).

    Args:
        ds: a Dataset with a column of encoded image (or video) bytes, e.g. from
            ``ray.data.read_binary_files(paths, include_paths=True)``.
        model: a ``.onnx``/``.engine``/checkpoint path that every worker can read, an ONNX model's
            bytes, or None for the embedded default model.
        column: the bytes column. ``path_column``: the column naming each input (kept in ``path``;
            a video suffix there makes the row a video); absent is fine.
        batch_size: rows per actor call (Ray Data's batch).
        concurrency: actors in the pool (one ``Locator`` each): an int, or (min, max) to autoscale.
            On a GPU cluster: the number of GPUs, with ``num_gpus=1``.
        num_gpus, num_cpus: resources each actor holds. With ``num_gpus`` > 0 the locator runs on
            ``cuda`` unless ``device`` says otherwise; else on the CPU. Leave the cluster a CPU for
            Ray Data's read tasks (``concurrency * num_cpus`` < its CPUs; a warning says when not):
            actors holding every CPU stall a read upstream for good.
        every, fps, max_frames: video frame sampling (``Locator.locate_video``).
        inference_batch_size: network inputs per inference (``Locator.load``'s ``batch_size``).
        locator_options: the rest of ``Locator.load``'s keywords (``backend``, ``analysis``,
            ``threshold``, ``threads``, ``workers``, ``faces``, ...).

    Returns:
        a Dataset with the columns of ``RESULT_SCHEMA`` plus ``ds``'s other columns: one row per
        image, one per sampled frame and one per video.
    """
    known = ds.schema(fetch_if_missing=False)
    if known is not None and column not in known.names:
        raise FakeLocatorError(f"locate_dataset: the dataset has no column {column!r} (columns: {known.names})")
    _warn_if_no_cpu_is_left(concurrency, num_cpus)
    return ds.map_batches(
        LocateBatches,
        **pool_options(
            model, dict(column=column, path_column=path_column, every=every, fps=fps, max_frames=max_frames),
            batch_size=batch_size, concurrency=concurrency, num_gpus=num_gpus, num_cpus=num_cpus,
            inference_batch_size=inference_batch_size, locator_options=locator_options,
        ),
    )


def _warn_if_no_cpu_is_left(concurrency: int | tuple[int, int], num_cpus: float) -> None:
    """Ray Data stalls for good when the actors hold every CPU of the cluster and a read task
    upstream (``read_binary_files``, ...) needs one: seen here with 2 actors × 1 CPU on 2 CPUs."""
    if not ray.is_initialized():
        return
    actors = concurrency[1] if isinstance(concurrency, tuple) else concurrency
    cpus = ray.cluster_resources().get("CPU", 0.0)
    if cpus and actors * num_cpus >= cpus:
        warnings.warn(
            f"locate_dataset: {actors} actor(s) x {num_cpus:g} CPU hold all {cpus:g} CPUs of the Ray cluster, and "
            "Ray Data's read tasks then wait for a CPU forever; give each actor less (num_cpus=0.5) or run fewer",
            stacklevel=3,
        )


def pool_options(
    model: str | os.PathLike | bytes | None,
    constructor: dict[str, Any],
    *,
    batch_size: int,
    concurrency: int | tuple[int, int],
    num_gpus: float,
    num_cpus: float,
    inference_batch_size: int,
    locator_options: dict[str, Any],
) -> dict[str, Any]:
    """``map_batches`` keywords for an actor pool of ``LocateBatches`` (or a subclass taking ``constructor``)."""
    if "batch_size" in locator_options:
        raise FakeLocatorError("batch_size is rows per actor call; the locator's inference batch is inference_batch_size")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise FakeLocatorError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    options = dict(locator_options)
    options.setdefault("device", "cuda" if num_gpus > 0 else "cpu")
    options["batch_size"] = inference_batch_size
    return dict(
        fn_constructor_kwargs=dict(model=model, locator_options=options, **constructor),
        batch_size=batch_size,
        batch_format="pyarrow",
        zero_copy_batch=True,
        compute=actor_pool(concurrency),
        num_gpus=num_gpus,
        num_cpus=num_cpus,
        # A dead actor (killed, out of memory, a lost node) is replaced and its unfinished batches run
        # again: Ray Data's defaults for actor pools (max_restarts=-1, max_task_retries=-1), kept.
    )


def read_map(png: bytes) -> np.ndarray:
    """``map_png`` back as a float32 (H, W) map in [0, 1] (8-bit: to 1/255)."""
    import cv2

    levels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if levels is None:
        raise FakeLocatorError("map_png: not a PNG")
    return levels.astype(np.float32) / 255.0
