"""``fakelocator batch``: every image and video under a folder or bucket, into trt-locate's layout, on Ray.

    run_batch("s3://bucket/uploads/", "s3://bucket/fakelocator/", BatchOptions(address="auto", concurrency=8, num_gpus=1))

Inputs are listed on the driver through a pyarrow filesystem (local paths, ``file://``, ``s3://``
with ``?endpoint_override=...`` for S3-compatible stores, ``gs://``, ``hdfs://``), recursively,
sorted, hidden files skipped, by suffix (``runtime.decode.IMAGE_EXTENSIONS`` and
``VIDEO_EXTENSIONS``). Each actor of the pool (``BatchWorker``, a ``LocateBatches``) reads its
inputs' bytes from the filesystem, locates them with its one ``Locator``, and writes their maps
itself, so neither the images nor the maps pass through the driver; the driver receives the
records, without maps, and writes them. A file that cannot be read is an error record.

What OUTPUT_URI gets (``runtime.outputs``; the same names as ``trt-locate``):

    maps/<key>.png, maps/<key>/<frame:06d>.png   8-bit gray maps; key: the input's path under INPUT_URI
                                                 without its suffix (``runtime.inputs.assign_keys``)
    results.jsonl                                local OUTPUT_URI: the runtime's ``Journal``, one line
                                                 per record, appended as records arrive
    results/part-<run>-<n>.parquet               --results parquet (object stores cannot append to
                                                 a file, so this is the only choice there)

Resume is the default: a run first reads the records already there (the runtime's ``Journal``
resume, or the Parquet parts) and skips every input that has one (failed ones too, as ``trt-locate
--resume`` does; a video counts once its verdict record is there). A map file exists in full or not
at all (local: a temporary file and a rename; object stores: one PUT), and a record is written only
after its maps, so a run killed at any point is continued by running the same command again. On a
local OUTPUT_URI the runtime's ``OutputLock`` keeps a second run out; on an object store, run one
at a time per prefix.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fakelocator.errors import FakeLocatorError
from fakelocator.integrations.ray import LocateBatches, pool_options
from fakelocator.runtime.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_video_path
from fakelocator.runtime.inputs import Input, assign_keys
from fakelocator.runtime.outputs import (
    MAPS, RESULTS, Journal, Layout, OutputLock, is_output_folder_error, output_error, write_atomic,
)

PARTS = "results"  # results/part-*.parquet
RESULTS_FORMATS = ("auto", "jsonl", "parquet")


@dataclass(frozen=True)
class BatchOptions:
    """How ``run_batch`` runs: the model, the Ray cluster and the actor pool, video sampling, outputs.

    Args:
        model: a model path every Ray worker can read; None: the embedded default model.
        address: the Ray cluster (``auto``: the one this machine belongs to, ``ray://host:10001``:
            Ray Client); None: a local Ray started for this run (``ray.init()``).
        concurrency, batch_size, num_gpus, num_cpus, inference_batch_size: the actor pool
            (``locate_dataset``).
        every, fps, max_frames: video frame sampling.
        results: "jsonl" (local OUTPUT_URI only), "parquet", or "auto" (jsonl when local).
        locator_options: more ``Locator.load`` keywords (``analysis``, ``threshold``, ``threads``...).
    """

    model: str | None = None
    address: str | None = None
    concurrency: int = 1
    batch_size: int = 16
    num_gpus: float = 0
    num_cpus: float = 1
    inference_batch_size: int = 8
    every: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    results: str = "auto"
    locator_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchStats:
    inputs: int = 0
    skipped: int = 0  # recorded by an earlier run
    images: int = 0  # image records written by this run (frames and videos apart)
    frames: int = 0
    videos: int = 0
    failed: int = 0  # inputs whose record says they failed (this run's and those skipped)
    fake: int = 0
    seconds: float = 0.0


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path in it) for a URI (``s3://``, ``file://``, ...) or a local path."""
    if "://" in uri:
        try:
            return pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
            raise FakeLocatorError(f"{uri}: not a filesystem URI pyarrow can open ({e})") from None
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def list_inputs(uri: str, fs: pafs.FileSystem, root: str, *, exclude: str | None = None) -> list[tuple[Input, str]]:
    """(input, its path in ``fs``) for every image and video at or under ``root``, sorted.

    ``Input.path`` (what records say) is ``uri`` joined with the file's path under it; ``Input.key``
    names its maps: that relative path without its suffix, as ``trt-locate`` names a relative path.
    """
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FakeLocatorError(f"{uri}: no such file or folder")
    if info.type == pafs.FileType.File:
        found = [(posixpath.basename(root), root)]
        shown = {found[0][0]: uri}
    else:
        found = []
        for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
            rel = posixpath.relpath(entry.path, root) if _is_local(fs) else entry.path[len(root.rstrip("/")) + 1:]
            rel = PurePosixPath(Path(rel).as_posix()).as_posix()
            if (entry.type != pafs.FileType.File or any(part.startswith(".") for part in rel.split("/"))
                    or PurePosixPath(rel).suffix.lower() not in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS):
                continue
            if exclude is not None and (entry.path + "/").startswith(exclude.rstrip("/") + "/"):
                continue  # the output folder inside the input folder: its maps are never inputs
            found.append((rel, entry.path))
        found.sort()
        shown = {rel: uri.rstrip("/") + "/" + rel for rel, _ in found}
    keyed = assign_keys([Input(rel, "video" if is_video_path(rel) else "image") for rel, _ in found], cwd="/")
    return [(replace(item, path=shown[rel]), where) for item, (rel, where) in zip(keyed, found)]


class BatchWorker(LocateBatches):
    """``LocateBatches`` that reads its inputs from a filesystem and writes their maps to the output.

    Input rows: ``path`` (as records name it), ``key`` (maps' name), ``source`` (the path in ``in_fs``).
    Output rows: ``LocateBatches``'s, with ``map`` (the map's name under OUTPUT_URI) instead of ``map_png``.
    """

    def __init__(self, model, *, in_fs: pafs.FileSystem, out_fs: pafs.FileSystem, out_root: str, **kwargs: Any):
        super().__init__(model, column="bytes", path_column="path", **kwargs)
        self.in_fs, self.out_fs, self.out_root = in_fs, out_fs, out_root

    def inputs(self, batch: pa.Table):
        paths = batch.column("path").to_pylist()
        data: list[bytes | None] = []
        errors: list[str | None] = []
        for source in batch.column("source").to_pylist():
            try:
                with self.in_fs.open_input_stream(source) as f:
                    data.append(f.read())
                errors.append(None)
            except (OSError, pa.ArrowException) as e:
                data.append(None)
                errors.append(f"cannot be read ({e})")
        return data, paths, errors

    def __call__(self, batch: pa.Table) -> pa.Table:
        table = super().__call__(batch).drop_columns(["source"])
        names: list[str | None] = []
        errors = table.column("error").to_pylist()
        for i, (png, key, frame) in enumerate(zip(
            table.column("map_png").to_pylist(), table.column("key").to_pylist(), table.column("frame").to_pylist()
        )):
            if png is None:
                names.append(None)
                continue
            name = Layout(Path("")).map_path(key, frame).as_posix()  # trt-locate's naming: maps/<key>[/<frame>].png
            try:
                self._write(name, png)
            except OSError as e:
                if is_output_folder_error(e):  # disk full, read-only...: every later map would fail too
                    raise output_error(self.out_root, e) from None
                errors[i], name = f"cannot write outputs ({e})", None
            names.append(name)
        table = table.drop_columns(["map_png"]).append_column("map", pa.array(names, pa.string()))
        return table.set_column(table.schema.get_field_index("error"), "error", pa.array(errors, pa.string()))

    def _write(self, name: str, data: bytes) -> None:
        if _is_local(self.out_fs):
            write_atomic(Path(self.out_root) / name, data)
        else:  # an object store: the object appears whole when the stream closes (one PUT)
            target = posixpath.join(self.out_root, name)
            with self.out_fs.open_output_stream(target) as f:
                f.write(data)


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """A result row as the results.jsonl record ``trt-locate`` writes (the same keys, in its order)."""
    kind = row["kind"]
    record: dict[str, Any] = {"kind": kind, "path": row["path"], "frame": row["frame"]}
    if kind == "frame":
        record["time_s"] = row["time_s"]
    record.update(
        map=row.get("map"), overlay=None, score=row["score"], label=row["label"], width=row["width"],
        height=row["height"], bbox=row["bbox"], error=row["error"],
    )
    if kind != "video":
        record["tiles"] = row["tiles"]
    record["timings_ms"] = dict(row["timings_ms"] or [])
    for name in ("regions", "faces", "summary"):
        if row.get(name) is not None:
            record[name] = json.loads(row[name])
    return record


class _Parts:
    """``results/part-<run>-<n>.parquet``: the records of each batch the driver receives, one file each."""

    def __init__(self, fs: pafs.FileSystem, root: str):
        self.fs, self.folder = fs, posixpath.join(root, PARTS)
        self.run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.count = 0

    def recorded(self) -> tuple[dict[str, str | None], dict[str, str | None], list[str]]:
        """({image path: its error}, {video path: its error} for videos with a verdict, parts that could not be read)."""
        images: dict[str, str | None] = {}
        videos: dict[str, str | None] = {}
        unreadable: list[str] = []
        try:
            entries = self.fs.get_file_info(pafs.FileSelector(self.folder, allow_not_found=True))
        except OSError as e:
            raise FakeLocatorError(f"{self.folder}: cannot be listed to resume from ({e})") from None
        for entry in sorted(entries, key=lambda e: e.path):
            name = posixpath.basename(entry.path)
            if entry.type != pafs.FileType.File or name.startswith(".") or not name.endswith(".parquet"):
                continue
            try:
                part = pq.read_table(entry.path, columns=["kind", "path", "error", "summary"], filesystem=self.fs)
            except (OSError, pa.ArrowException):
                unreadable.append(entry.path)
                continue
            for row in part.to_pylist():
                if row["kind"] == "image":
                    images[row["path"]] = row["error"]
                elif row["kind"] == "video":
                    summary = json.loads(row["summary"]) if row["summary"] else None
                    videos[row["path"]] = _video_error({"error": row["error"], "summary": summary})
        return images, videos, unreadable

    def write(self, table: pa.Table) -> None:
        self.count += 1
        name = f"part-{self.run}-{self.count:06d}.parquet"
        if _is_local(self.fs):
            target = Path(self.folder) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            write_atomic(target, sink.getvalue().to_pybytes())
        else:
            pq.write_table(table, posixpath.join(self.folder, name), filesystem=self.fs)


def run_batch(
    input_uri: str,
    output_uri: str,
    options: BatchOptions = BatchOptions(),
    *,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> BatchStats:
    """Locate every input under ``input_uri`` not yet recorded under ``output_uri`` (see the module docstring)."""
    if options.results not in RESULTS_FORMATS:
        raise FakeLocatorError(f"results must be one of {RESULTS_FORMATS}, got {options.results!r}")
    in_fs, in_root = filesystem(input_uri)
    out_fs, out_root = filesystem(output_uri)
    local_out = _is_local(out_fs)
    results = options.results if options.results != "auto" else ("jsonl" if local_out else "parquet")
    if results == "jsonl" and not local_out:
        raise FakeLocatorError(
            f"--out {output_uri}: results.jsonl needs a local folder (an object store cannot append to a file); "
            "use --results parquet"
        )
    # With a local Ray the workers see this machine's files; a cluster's workers may see other ones.
    if options.address is None and options.model is not None and not os.path.exists(options.model):
        raise FakeLocatorError(f"--model {options.model}: no such file")
    same_fs = type(in_fs) is type(out_fs)
    inputs = list_inputs(input_uri, in_fs, in_root, exclude=out_root if same_fs else None)
    if not inputs:
        raise FakeLocatorError(f"{input_uri}: no images or videos under it")

    lock = OutputLock(Path(out_root)) if local_out else None
    journal = parts = None
    try:
        if results == "jsonl":
            journal = Journal(Path(out_root) / RESULTS, resume=True)
            if journal.bad_lines:
                log(f"fakelocator batch: warning: {journal.describe_bad_lines()}")
            Layout(Path(out_root)).remove_temporaries()
            done_images = {p: r.get("error") for p, r in journal.recorded.images.items()}
            done_videos = {p: _video_error(v.summary) for p, v in journal.recorded.videos.items() if v.summary is not None}
        else:
            parts = _Parts(out_fs, out_root)
            done_images, done_videos, unreadable = parts.recorded()
            if unreadable:
                log(f"fakelocator batch: warning: {len(unreadable)} part(s) could not be read and are ignored "
                    f"(their inputs run again): {', '.join(unreadable[:3])}")
        return _run(inputs, in_fs, out_fs, out_root, options, done_images, done_videos, journal, parts, log)
    finally:
        if journal is not None:
            journal.close()
        if lock is not None:
            lock.release()


def _run(inputs, in_fs, out_fs, out_root, options, done_images, done_videos, journal, parts, log) -> BatchStats:
    import ray
    import ray.data

    stats = BatchStats(inputs=len(inputs))
    todo = []
    for item, source in inputs:
        done = done_videos if item.kind == "video" else done_images
        if item.path in done:
            stats.skipped += 1
            stats.failed += done[item.path] is not None  # the exit status counts what earlier runs recorded too
        else:
            todo.append({"path": item.path, "key": item.key, "source": source})
    if stats.skipped:
        log(f"fakelocator batch: {stats.skipped} of {len(inputs)} input(s) already recorded under the output; skipped")
    if not todo:
        return stats

    started = time.perf_counter()
    own_ray = not ray.is_initialized()
    if own_ray:
        # A local Ray for this run: no dashboard (nothing to serve), workers' logs kept in Ray's session folder.
        local = {"include_dashboard": False} if options.address is None else {}
        ray.init(address=options.address, log_to_driver=False, **local)
    try:
        ds = ray.data.from_items(todo)
        ds = ds.map_batches(
            BatchWorker,
            **pool_options(
                options.model,
                dict(in_fs=in_fs, out_fs=out_fs, out_root=out_root,
                     every=options.every, fps=options.fps, max_frames=options.max_frames),
                batch_size=options.batch_size, concurrency=options.concurrency, num_gpus=options.num_gpus,
                num_cpus=options.num_cpus, inference_batch_size=options.inference_batch_size,
                locator_options=options.locator_options,
            ),
        )
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            table = table.drop_columns([c for c in ("key",) if c in table.column_names])
            if parts is not None:
                parts.write(table)
            for row in table.to_pylist():
                record = record_of(row)
                if journal is not None:
                    journal.write(record)
                _count(stats, record)
    finally:
        if own_ray:
            ray.shutdown()
        stats.seconds = time.perf_counter() - started
    return stats


def _video_error(record: dict[str, Any]) -> str | None:
    """Why a video's verdict record says it failed (its error, or failed frames), or None."""
    failed = (record.get("summary") or {}).get("failed_frames", 0)
    return record.get("error") or (f"{failed} frame(s) failed" if failed else None)


def _count(stats: BatchStats, record: dict[str, Any]) -> None:
    kind = record["kind"]
    if kind == "frame":
        stats.frames += 1
        return
    if kind == "image":
        stats.images += 1
    else:
        stats.videos += 1
    if (record["error"] if kind == "image" else _video_error(record)) is not None:
        stats.failed += 1
    elif record["label"] == "fake":
        stats.fake += 1
