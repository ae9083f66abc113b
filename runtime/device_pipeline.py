"""The GPU pipeline: pre- and post-processing on the device, around a backend that reads and writes device memory.

For one batch of decoded uint8 crops (any sizes, either colour order)::

    host:     pack the crops into one pinned staging buffer
    upload:   one cudaMemcpyAsync host → device of the whole pack
    compute:  preprocess kernel → the backend's input binding (float32 or float16)
              → the backend runs (TensorRT on the stream; ONNX Runtime through I/O binding)
              → postprocess kernel: each map from the map binding → its crop's full H × W (float32)
              → scores and features (and, when asked, the network-resolution maps) → pinned memory
    download: one cudaMemcpyAsync device → host of all the full-resolution maps, into pinned memory
    host:     copy each map out of pinned memory into its result's own array

Nothing crosses to the host between the upload and the download, and no torch is involved:
memory, streams and events come from ``fakelocator.runtime.cuda`` (cuda-python), the kernels from
the native library (``fakelocator.runtime.native``), the bindings from the backend's
:class:`~fakelocator.runtime.backends.base.DeviceIO`.

Buffers are per *slot*; a pipeline has two, so while the device works on batch k the host packs
batch k + 1, whose upload (on a copy stream of its own) overlaps batch k's compute, and batch k's
download (on a third stream) overlaps batch k + 1's compute. Slot buffers grow when a batch needs
more (with headroom) and are otherwise reused: after the first batches, no batch allocates.

With a ``native`` contract (``fakelocator.tiling``) the same batch is analysed tile by tile: the
tiles kernel cuts every crop (or the part of its tiles the batch takes) into normalized tiles
straight into the input binding (crop k's tiles after crop k − 1's, one network row each), and the
stitch kernel blends the tile maps from the map binding into each crop's full-resolution map;
scores, features and network maps come back per tile (``DeviceBatch.tiles`` says how many rows
each crop took). As on the host, a crop's tiles may span batches: its parts' tile maps are copied
(device to device) into a tile store that the stitch of its last part reads. Such a crop's pixels
are uploaded with each of its parts; a batch of at least a crop's tiles uploads it once.

Every stage is timed with CUDA events: ``pack`` (host), ``h2d``, ``preprocess``, ``infer``,
``postprocess``, ``d2h`` (device), in ms per batch.

``Locator`` uses this path by itself (``pipeline="auto"``) when the backend offers device I/O, the
native library was built with CUDA and a GPU is visible; see :func:`open_device_path`.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.backends.base import Backend, DeviceIO, DeviceIOUnavailable
from fakelocator.runtime.pipeline import Job, Runner, _Crop, _TileOutputs
from fakelocator.runtime.levels import map_levels
from fakelocator.runtime.results import LocateResult
from fakelocator.runtime.spec import RunSpec
from fakelocator.tiling import TileGrid, pool_scores, span_rects

log = logging.getLogger("fakelocator")

PIPELINES = ("auto", "host", "device")
#: Stages timed per batch, in this order.
STAGES = ("pack", "h2d", "preprocess", "infer", "postprocess", "d2h")
#: Offsets of crops and maps inside the packed buffers are multiples of this (cudaMalloc's alignment).
ALIGN = 256
#: Host copies (packing, copying maps out) of at least this many bytes per batch use threads.
_THREADED_BYTES = 8 << 20


def _cuda():
    """``fakelocator.runtime.cuda``, looked up at use (tests put a fake in ``sys.modules``)."""
    return importlib.import_module("fakelocator.runtime.cuda")


def _native_library():
    """The native library, or DeviceIOUnavailable with the reason it cannot be loaded."""
    from fakelocator.runtime import native

    try:
        return native.require()
    except FakeLocatorError as e:
        raise DeviceIOUnavailable(str(e)) from None


def _layout(sizes: Sequence[tuple[int, int]], bytes_per_pixel: int) -> tuple[list[int], int]:
    """Offsets of packed (h, w) items of ``bytes_per_pixel``, each aligned to ALIGN, and the total."""
    offsets, total = [], 0
    for h, w in sizes:
        offsets.append(total)
        total += -(-h * w * bytes_per_pixel // ALIGN) * ALIGN
    return offsets, max(total, ALIGN)


def _grown(need: int, have: int) -> int:
    """Capacity for ``need`` bytes: at least a quarter more than before (fewer regrowths when sizes
    vary), in 64 KiB steps."""
    want = max(need, have + have // 4)
    return -(-want // (64 << 10)) * (64 << 10)


@dataclass
class DeviceBatch:
    """One batch's results on the host, in submission order.

    Attributes:
        maps: per crop, its (H, W) float32 map in [0, 1] (arrays of their own); None for the part
            of a ``native`` crop whose tiles go on in a later batch.
        scores: (n,) float32.
        features: (n, C) float32, or None when the model has no features output.
        network_maps: (n, h, w) float32 maps at network resolution, when asked for at submit.
        timings: ms for the whole batch per stage (``STAGES``).
        tag: what ``submit`` was given.
        tiles: with a ``native`` contract, how many tiles (network rows) each crop's part took; its
            rows of ``scores``, ``features`` and ``network_maps`` are consecutive, in
            ``fakelocator.tiling``'s layout order. None in ``fit`` analysis (one row per crop).
    """

    maps: list[np.ndarray]
    scores: np.ndarray
    features: np.ndarray | None
    network_maps: np.ndarray | None
    timings: dict[str, float]
    tag: Any = None
    tiles: list[int] | None = None


@dataclass
class _Pending:
    n: int
    sizes: list[tuple[int, int]]
    map_offsets: list[int]
    map_bytes: int
    network_maps: bool
    pack_ms: float
    tag: Any
    tiles: list[int] | None = None  # per crop, in native analysis: the rows (tiles) of its part
    ends: list[int] = field(default_factory=list)  # the crops whose full-resolution map this batch makes

    @property
    def rows(self) -> int:
        """Network rows the batch used: one per crop, or one per tile."""
        return self.n if self.tiles is None else sum(self.tiles)


@dataclass
class _Part:
    """``native``: the tiles ``start:start + count`` of a crop's layout ``grid`` that one batch takes."""

    grid: TileGrid
    start: int
    count: int

    @property
    def ends(self) -> bool:
        """The crop's last tiles: its map is stitched in this batch."""
        return self.start + self.count == len(self.grid)


@dataclass
class _Slot:
    """One batch's worth of buffers and events."""

    buffers: dict[str, Any] = field(default_factory=dict)  # staging, frames, maps, maps_host, outputs_host
    events: dict[str, Any] = field(default_factory=dict)
    pending: _Pending | None = None


class DevicePipeline:
    """Runs batches through a backend's :class:`DeviceIO` with device pre/post-processing.

    ``submit`` enqueues a batch and returns at once; ``collect`` waits for the oldest batch in
    flight and returns its :class:`DeviceBatch`. At most ``depth`` batches are in flight: collect
    one before submitting more.

    Args:
        io: the backend's device I/O.
        lib: the native library (built with CUDA).
        contract: the model's preprocessing contract.
        depth: batches in flight (slots); 2 overlaps the host's packing and the copies of one
            batch with the compute of the other.
        threads: host threads for packing and copying maps out (large batches only).
    """

    def __init__(self, io: DeviceIO, lib, contract: Preprocessing, *, depth: int = 2, threads: int | None = None):
        if depth < 1:
            raise FakeLocatorError(f"depth must be >= 1, got {depth}")
        self.io, self.lib, self.contract, self.depth = io, lib, contract, depth
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.allocations: list[tuple[str, int]] = []  # (buffer, bytes), in order: for tests and diagnostics
        self._cuda = _cuda()
        self._pool = None
        self._queue: deque[_Slot] = deque()
        self._next = 0
        self._slots: list[_Slot] = []
        self._store = None  # native: the tile maps of a crop whose tiles span batches (device memory)
        self._open: int | None = None  # native: the next tile of the crop still open, or None
        self.upload = self.download = None
        try:
            self._cuda.set_device(io.device_index)
            self.upload = self._cuda.Stream()
            self.download = self._cuda.Stream()
            names = ("up0", "up1", "pre0", "pre1", "infer1", "post1", "computed", "down0", "down1")
            for _ in range(depth):
                self._slots.append(_Slot(events={name: self._cuda.Event() for name in names}))
        except BaseException:
            self.close()
            raise

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    # ---- buffers -----------------------------------------------------------------------------

    def _buffer(self, slot: _Slot, name: str, need: int, pinned: bool):
        buffer = slot.buffers.get(name)
        if buffer is None or buffer.nbytes < need:
            size = _grown(need, 0 if buffer is None else buffer.nbytes)
            if buffer is not None:
                buffer.close()
                slot.buffers[name] = None
            slot.buffers[name] = (self._cuda.PinnedBuffer if pinned else self._cuda.DeviceBuffer)(size)
            self.allocations.append((name, size))
        return slot.buffers[name]

    def _outputs_layout(self, network_maps: bool) -> dict[str, tuple[int, int]]:
        """(offset, bytes) of scores, features and network maps in a slot's small pinned buffer."""
        rows, (mh, mw) = self.io.max_batch, self.io.map_size
        layout, offset = {}, 0
        for name, nbytes in (("score", rows * 4), ("features", rows * (self.io.feature_size or 0) * 4),
                             ("map", rows * mh * mw * 4 if network_maps else 0)):
            layout[name] = (offset, nbytes)
            offset += -(-nbytes // ALIGN) * ALIGN
        return layout

    # ---- one batch ---------------------------------------------------------------------------

    def submit(
        self,
        images: Sequence[np.ndarray],
        color_orders: Sequence[str],
        *,
        network_maps: bool = False,
        tag: Any = None,
        grids: Sequence[TileGrid] | None = None,
        spans: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """Enqueue a batch: uint8 (H_i, W_i, 3) crops (row-strided views are fine) in ``color_orders[i]``.

        With ``network_maps`` the network-resolution maps come back too (``DeviceBatch.network_maps``).
        With a ``native`` contract, ``grids[i]`` is crop i's tile layout (``fakelocator.tiling.TileGrid``,
        as the caller already worked it out; None: worked out here) and ``spans[i]`` = (start, count)
        the part of its tiles, in layout order, this batch takes (None: all of them). A crop whose
        tiles span batches is submitted once per part, in order, each part after the previous one:
        its tile maps are kept on the device until its last part, which stitches them
        (``DeviceBatch.maps[i]`` is None for a part that does not end its crop).
        """
        n = len(images)
        if n == 0:
            raise FakeLocatorError("submit: an empty batch")
        if len(color_orders) != n:
            raise FakeLocatorError(f"submit: {n} images but {len(color_orders)} colour orders")
        if self.in_flight >= self.depth:
            raise FakeLocatorError(f"submit: {self.in_flight} batches already in flight; collect one first")
        for k, image in enumerate(images):
            if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
                raise FakeLocatorError(f"submit: image {k} must be uint8 (H, W, 3), got {getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
        parts = self._parts(images, grids, spans) if self.contract.native else None
        self.io.batch_rows(sum(p.count for p in parts) if parts is not None else n)  # refuses what does not fit the bindings
        slot = self._slots[self._next]
        try:
            self._submit(slot, list(images), list(color_orders), network_maps, tag, parts)
        except BaseException:
            self.discard()
            raise
        self._next = (self._next + 1) % self.depth
        self._queue.append(slot)

    def tile_counts(self, images: Sequence[np.ndarray]) -> list[int]:
        """With a ``native`` contract, the tiles (network rows) each whole image takes."""
        c = self.contract
        return [self.lib.tile_count(im.shape[0], im.shape[1], c.size, c.tile_overlap) for im in images]

    def _parts(self, images, grids, spans) -> list["_Part"]:
        """Each image's tile layout and the part of it this batch takes, checked against what is open."""
        c, n = self.contract, len(images)
        if grids is not None and len(grids) != n or spans is not None and len(spans) != n:
            raise FakeLocatorError(f"submit: {n} images but {len(grids or ())} tile grids and {len(spans or ())} spans")
        parts, open_part = [], self._open
        for k, image in enumerate(images):
            h, w = int(image.shape[0]), int(image.shape[1])
            grid = grids[k] if grids is not None else TileGrid.of(h, w, c.height, c.width, c.tile_overlap)
            if (grid.height, grid.width, grid.tile_h, grid.tile_w, grid.overlap) != (h, w, c.height, c.width, c.tile_overlap):
                raise FakeLocatorError(f"submit: tile grid {k} is for a {grid.width}x{grid.height} image in tiles of "
                                       f"{grid.tile_w}x{grid.tile_h} (overlap {grid.overlap}), not this {w}x{h} crop and contract")
            start, count = (0, len(grid)) if spans is None else (int(spans[k][0]), int(spans[k][1]))
            if not (0 <= start and count >= 1 and start + count <= len(grid)):
                raise FakeLocatorError(f"submit: span {k} ({start}, {count}) is outside its {len(grid)} tiles")
            if start != (open_part if open_part is not None else 0):
                want = "tiles from 0 (a new crop)" if open_part is None else f"the open crop's tiles from {open_part}"
                raise FakeLocatorError(f"submit: part {k} starts at tile {start}; expected {want}")
            open_part = None if start + count == len(grid) else start + count
            parts.append(_Part(grid, start, count))
        return parts

    def _submit(self, slot: _Slot, images: list[np.ndarray], orders: list[str], network_maps: bool, tag: Any,
                parts: list["_Part"] | None) -> None:
        cuda, io, lib, ev = self._cuda, self.io, self.lib, slot.events
        n = len(images)
        sizes = [(int(im.shape[0]), int(im.shape[1])) for im in images]
        native = parts is not None
        tiles = [p.count for p in parts] if native else None
        rows = sum(tiles) if native else n
        first_rows = np.concatenate([[0], np.cumsum(tiles)[:-1]]).astype(int).tolist() if native else list(range(n))
        if native and tuple(io.map_size) != tuple(self.contract.size):
            raise FakeLocatorError(f"native analysis stitches tile maps of the tile size {self.contract.size}, "
                                   f"but the model's maps are {tuple(io.map_size)}")
        # Full-resolution maps come back for crops that end in this batch (every crop, in fit).
        ends = [k for k in range(n) if not native or parts[k].ends]
        cuda.set_device(io.device_index)  # the calling thread's current device
        offsets, frame_bytes = _layout(sizes, 3)
        map_offsets, map_bytes = _layout([sizes[k] for k in ends], 4)
        staging = self._buffer(slot, "staging", frame_bytes, pinned=True)
        frames = self._buffer(slot, "frames", frame_bytes, pinned=False)
        maps = self._buffer(slot, "maps", map_bytes, pinned=False)
        self._buffer(slot, "maps_host", map_bytes, pinned=True)
        layout = self._outputs_layout(network_maps)
        small = self._buffer(slot, "outputs_host", sum(-(-b // ALIGN) * ALIGN for _, b in layout.values()), pinned=True)

        t0 = time.perf_counter()
        packed = staging.array((staging.nbytes,), np.uint8)

        def pack(k: int) -> None:
            h, w = sizes[k]
            np.copyto(packed[offsets[k]:offsets[k] + h * w * 3].reshape(h, w, 3), images[k])

        self._each(pack, n, frame_bytes)
        pack_ms = (time.perf_counter() - t0) * 1000

        ev["up0"].record(self.upload)
        cuda.memcpy_async(frames.ptr, staging.ptr, frame_bytes, "h2d", self.upload)
        ev["up1"].record(self.upload)

        from fakelocator.runtime.native import DeviceImage

        with io.lock:
            stream = io.stream
            stream.wait(ev["up1"])
            ev["pre0"].record(stream)
            x = io.input(rows)  # (rows, 3, h, w) on the device
            start = 0
            while start < n:  # one call per run of crops in the same colour order
                end = start + 1
                while end < n and orders[end] == orders[start]:
                    end += 1
                if native:  # each crop's part, from its first row on, as at most three rectangles of tiles
                    crops, rects = [], []
                    for k in range(start, end):
                        p = parts[k]
                        for rect in span_rects(len(p.grid.ys), len(p.grid.xs), p.start, p.count):
                            crops.append(DeviceImage(frames.ptr + offsets[k], *sizes[k]))
                            rects.append(rect)
                    lib.tiles_device(crops, orders[start], self.contract, x.ptr, dtype=x.dtype, start=first_rows[start],
                                     rects=rects, stream=stream)
                else:
                    crops = [DeviceImage(frames.ptr + offsets[k], *sizes[k]) for k in range(start, end)]
                    lib.preprocess_device(crops, orders[start], self.contract, x.ptr, dtype=x.dtype, start=start, stream=stream)
                start = end
            ev["pre1"].record(stream)
            out = io.run(rows, stream)
            ev["infer1"].record(stream)
            net_map = out["map"]  # (rows, 1, mh, mw) float32
            if tuple(net_map.shape[1:]) != (1, *io.map_size):
                raise FakeLocatorError(f"the backend's map output is {net_map.shape}, expected (N, 1, {io.map_size[0]}, {io.map_size[1]})")
            outs = {k: maps.ptr + o for k, o in zip(ends, map_offsets)}
            if native:
                self._stitch(net_map.ptr, parts, sizes, first_rows, outs, stream)
            else:
                lib.postprocess_device(net_map.ptr, io.map_size, sizes, maps_out=[outs[k] for k in range(n)], stream=stream)
            ev["post1"].record(stream)
            # The output bindings are reused by the next batch: their few bytes come back in stream order.
            for name, (offset, nbytes) in layout.items():
                if nbytes and name in out:
                    count = nbytes // io.max_batch * rows
                    cuda.memcpy_async(small.ptr + offset, out[name].ptr, count, "d2h", stream)
            ev["computed"].record(stream)

        self.download.wait(ev["computed"])
        ev["down0"].record(self.download)
        cuda.memcpy_async(slot.buffers["maps_host"].ptr, maps.ptr, map_bytes, "d2h", self.download)
        ev["down1"].record(self.download)
        slot.pending = _Pending(n, sizes, map_offsets, map_bytes, network_maps, pack_ms, tag, tiles, ends)

    def _stitch(self, maps_ptr: int, parts: list["_Part"], sizes, first_rows, outs: dict[int, int], stream) -> None:
        """Stitch the crops that end in this batch, on ``stream``: a crop whole in the batch from the
        map binding; a crop whose tiles came over several batches from the tile store, after this
        batch's part of it is copied there (a crop still open only has its part copied)."""
        c, lib, (th, tw) = self.contract, self.lib, self.contract.size
        tile_bytes = th * tw * 4
        whole = [k for k, p in enumerate(parts) if p.start == 0 and p.ends]
        if whole:
            lib.stitch_device(maps_ptr, c.size, [sizes[k] for k in whole], c.tile_overlap, [outs[k] for k in whole],
                              first_tiles=[first_rows[k] for k in whole], window=c.tile_window, stream=stream)
        for k, p in enumerate(parts):
            if p.start == 0 and p.ends:
                continue
            if p.start == 0:  # a crop opens: the store holds all its tile maps
                self._store = self._store_for(len(p.grid) * tile_bytes)
            self._cuda.memcpy_async(self._store.ptr + p.start * tile_bytes, maps_ptr + first_rows[k] * tile_bytes,
                                    p.count * tile_bytes, "d2d", stream)
            if p.ends:
                lib.stitch_device(self._store.ptr, c.size, [sizes[k]], c.tile_overlap, [outs[k]], first_tiles=[0],
                                  window=c.tile_window, stream=stream)
        self._open = None
        if parts and not parts[-1].ends:
            self._open = parts[-1].start + parts[-1].count

    def _store_for(self, need: int):
        """The tile store with room for ``need`` bytes; growing it waits for the work that reads it."""
        if self._store is None or self._store.nbytes < need:
            size = _grown(need, 0 if self._store is None else self._store.nbytes)
            if self._store is not None:
                self.io.stream.synchronize()  # a queued stitch may still read the old store
                self._store.close()
                self._store = None
            self._store = self._cuda.DeviceBuffer(size)
            self.allocations.append(("tile_store", size))
        return self._store

    def collect(self) -> DeviceBatch:
        """Wait for the oldest batch in flight; its results, copied out of the slot's buffers."""
        if not self._queue:
            raise FakeLocatorError("collect: no batch in flight")
        slot = self._queue[0]
        ev, p = slot.events, slot.pending
        try:
            ev["down1"].synchronize()
        except BaseException:
            self.discard()
            raise
        elapsed = self._cuda.Event.elapsed_ms
        timings = {
            "pack": p.pack_ms,
            "h2d": elapsed(ev["up0"], ev["up1"]),
            "preprocess": elapsed(ev["pre0"], ev["pre1"]),
            "infer": elapsed(ev["pre1"], ev["infer1"]),
            "postprocess": elapsed(ev["infer1"], ev["post1"]),
            "d2h": elapsed(ev["down0"], ev["down1"]),
        }
        host = slot.buffers["maps_host"].array((slot.buffers["maps_host"].nbytes,), np.uint8)
        maps: list[np.ndarray | None] = [None] * p.n

        def copy_out(i: int) -> None:
            k = p.ends[i]
            h, w = p.sizes[k]
            maps[k] = host[p.map_offsets[i]:p.map_offsets[i] + 4 * h * w].view(np.float32).reshape(h, w).copy()

        self._each(copy_out, len(p.ends), p.map_bytes)
        layout = self._outputs_layout(p.network_maps)
        small = slot.buffers["outputs_host"]

        def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
            offset, _ = layout[name]
            raw = small.array((small.nbytes,), np.uint8)
            count = int(np.prod(shape))
            return raw[offset:offset + 4 * count].view(np.float32).reshape(shape).copy()

        scores = take("score", (p.rows,))
        features = take("features", (p.rows, self.io.feature_size)) if self.io.feature_size else None
        network = take("map", (p.rows, *self.io.map_size)) if p.network_maps else None
        slot.pending = None
        self._queue.popleft()
        return DeviceBatch(maps, scores, features, network, timings, p.tag, p.tiles)

    def discard(self) -> None:
        """Drop every batch in flight (after waiting for the device to finish with its buffers)."""
        for stream in (self.io.stream, self.upload, self.download):
            if stream is None:
                continue
            try:
                stream.synchronize()
            except Exception:  # noqa: BLE001 - the error that brought us here is the one to report
                pass
        for slot in self._queue:
            slot.pending = None
        self._queue.clear()
        self._next = 0
        self._open = None

    def _each(self, fn, n: int, nbytes: int) -> None:
        if self.threads > 1 and n > 1 and nbytes >= _THREADED_BYTES:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="fakelocator-device-copy")
            list(self._pool.map(fn, range(n)))
        else:
            for k in range(n):
                fn(k)

    def close(self) -> None:
        """Free the slots' buffers, events and streams (not the backend's DeviceIO). Idempotent."""
        if self._queue:
            self.discard()
        for slot in self._slots:
            for resource in [*slot.buffers.values(), *slot.events.values()]:
                if resource is not None:
                    resource.close()
            slot.buffers, slot.events = {}, {}
        self._slots = []
        if self._store is not None:
            self._store.close()
            self._store = None
        for stream in (self.upload, self.download):
            if stream is not None:
                stream.close()
        self.upload = self.download = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class DeviceRunner(Runner):
    """The pipeline's ``Runner`` with pre/post-processing on the device (:class:`DevicePipeline`).

    Batches are assembled exactly as on the host path (in ``native``, a crop's tiles may span
    batches); each goes to the device pipeline, and its full-resolution maps, scores and features
    come back to the jobs when it completes, one batch later (two batches are in flight). Tile
    scores are pooled by the contract's rule (``fakelocator.tiling.pool_scores``) when a crop's
    last batch is back.
    """

    finish_timing = "finish"

    def __init__(self, path: "DevicePath", backend: Backend, preprocessor, spec: RunSpec, **options):
        super().__init__(backend, preprocessor, spec, **options)
        self._input = None  # the host path's input batch
        self.path = path
        self.pipeline: DevicePipeline | None = None

    def run(self, jobs: Iterable[Job]) -> Iterator[LocateResult]:
        self.pipeline = self.path.acquire()
        try:
            yield from super().run(jobs)
        finally:
            self.pipeline.discard()
            self.path.release(self.pipeline)
            self.pipeline = None

    def _run_batch(self, batch: list[_Crop]) -> int:
        if self.pipeline.in_flight >= self.pipeline.depth:
            self._complete(self.pipeline.collect())
        images, orders = [c.image for c in batch], [c.job.color_order for c in batch]
        if self.native:
            self.pipeline.submit(images, orders, network_maps=self.keep_outputs, tag=batch,
                                 grids=[c.grid for c in batch], spans=[(c.start, c.count) for c in batch])
        else:
            self.pipeline.submit(images, orders, network_maps=self.keep_outputs, tag=batch)
        return sum(c.count for c in batch)

    def _flush(self) -> None:
        while self.pipeline.in_flight:
            self._complete(self.pipeline.collect())

    def _complete(self, done: DeviceBatch) -> None:
        batch: list[_Crop] = done.tag
        rows = done.tiles if done.tiles is not None else [1] * len(batch)
        per_row = {stage: ms / sum(rows) for stage, ms in done.timings.items()}
        first = 0
        for i, crop in enumerate(batch):
            job, r = crop.job, slice(first, first + rows[i])
            first += rows[i]
            if not job.full:
                job.full = [None] * len(job.outputs)
            features = done.features[r] if done.features is not None else None
            if self.native:
                outs = job.outputs[crop.slot]
                if outs is None:
                    size = len(crop.grid)
                    outs = job.outputs[crop.slot] = _TileOutputs(
                        crop.grid, np.empty((size, *self.contract.size), np.float32) if done.network_maps is not None else None,
                        np.empty(size, np.float32))
                a, b = crop.start, crop.start + crop.count
                outs.scores[a:b] = done.scores[r]
                if features is not None:
                    if outs.features is None:
                        outs.features = np.empty((len(crop.grid), features.shape[1]), np.float32)
                    outs.features[a:b] = features
                if done.network_maps is not None:
                    outs.maps[a:b] = done.network_maps[r]
            else:
                small = done.network_maps[i] if done.network_maps is not None else None
                job.outputs[crop.slot] = (small, float(done.scores[i]), None if features is None else features[0])
            if done.maps[i] is not None:
                job.full[crop.slot] = done.maps[i]
            for stage, ms in per_row.items():
                job.timings[stage] = job.timings.get(stage, 0.0) + ms * rows[i]
            job.remaining -= rows[i]
            if job.remaining == 0 and not self.keep_images:
                job.image = None

    def _crop_map(self, job: Job, slot: int, height: int, width: int) -> tuple[np.ndarray, float]:
        """Crop ``slot``'s map, made on the device, and its score (its tile scores pooled, in ``native``)."""
        full = map_levels(job.full[slot]) if self.levels else job.full[slot]  # levels of the downloaded float32 map
        if self.native:
            return full, pool_scores(job.outputs[slot].scores, self.contract.tile_pooling)
        return full, job.outputs[slot][1]


class DevicePath:
    """What a ``Locator`` keeps for the GPU path: the backend's DeviceIO, the native library, and a
    pool of pipelines (one per concurrent ``locate`` iteration; normally one, reused for every call)."""

    def __init__(self, io: DeviceIO, lib, contract: Preprocessing, *, depth: int = 2, threads: int | None = None):
        self.io, self.lib, self.contract = io, lib, contract
        self.depth, self.threads = depth, threads
        self._idle: list[DevicePipeline] = []
        self._all: list[DevicePipeline] = []
        self._lock = threading.Lock()

    def acquire(self) -> DevicePipeline:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        pipeline = DevicePipeline(self.io, self.lib, self.contract, depth=self.depth, threads=self.threads)
        with self._lock:
            self._all.append(pipeline)
        return pipeline

    def release(self, pipeline: DevicePipeline) -> None:
        with self._lock:
            if pipeline in self._all:
                self._idle.append(pipeline)

    @property
    def pipelines(self) -> list[DevicePipeline]:
        """Every pipeline made so far (for diagnostics: their ``allocations``)."""
        return list(self._all)

    def runner(self, backend: Backend, preprocessor, spec: RunSpec, **options) -> DeviceRunner:
        if spec.contract != self.contract:
            raise FakeLocatorError("the device path was opened for another contract than this run's")
        return DeviceRunner(self, backend, preprocessor, spec, **options)

    def close(self) -> None:
        with self._lock:
            pipelines, self._all, self._idle = self._all, [], []
        for pipeline in pipelines:
            pipeline.close()
        self.io.close()


def open_device_path(backend: Backend, spec: RunSpec, **options) -> DevicePath:
    """The GPU path for ``backend`` running ``spec`` (its contract, its batch size), or
    DeviceIOUnavailable saying why there is none.

    Needs: the backend on a CUDA device and offering device I/O, the native library built with
    CUDA, and cuda-python seeing a GPU. ``options``: ``depth``, ``threads`` of ``DevicePipeline``.
    """
    device = getattr(backend, "device", "cpu")
    if not str(device).startswith("cuda"):
        raise DeviceIOUnavailable(f"the {backend.name} backend runs on {device}")
    lib = _native_library()
    if not lib.has_cuda:
        raise DeviceIOUnavailable(f"the native library {lib.path} was built without CUDA (nvcc was not found); rebuild it with nvcc")
    try:
        count = _cuda().device_count()
    except FakeLocatorError as e:
        raise DeviceIOUnavailable(str(e)) from None
    if count < 1:
        raise DeviceIOUnavailable("cuda-python sees no CUDA device")
    io = backend.device_io(spec.batch_size)
    try:
        if spec.native and tuple(io.map_size) != tuple(spec.contract.size):
            raise DeviceIOUnavailable(f"native analysis stitches maps of the tile size {spec.contract.size}, "
                                      f"but the model's maps are {tuple(io.map_size)}")
        return DevicePath(io, lib, spec.contract, **options)
    except BaseException:
        io.close()
        raise


def choose_pipeline(backend: Backend, pipeline: str, spec: RunSpec) -> tuple[RunSpec, DevicePath | None]:
    """Where ``spec`` runs: ``(spec on "device", its DevicePath)`` for ``pipeline`` "device" (or
    FakeLocatorError why not), ``(spec on "host", None)`` for "host", and for "auto" the device path
    when it is possible, else the host after logging why. The device path runs the spec's contract,
    ``fit`` or ``native`` (tiles, stitching and tile-score pooling), at its batch size (no larger
    than the device bindings take).
    """
    if pipeline not in PIPELINES:
        raise FakeLocatorError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
    if pipeline == "host":
        return spec.on("host"), None
    try:
        path = open_device_path(backend, spec)
        return spec.on("device", max_batch=path.io.max_batch), path
    except DeviceIOUnavailable as e:
        if pipeline == "device":
            raise FakeLocatorError(f"the GPU pipeline is not available: {e}") from None
        on_gpu = str(getattr(backend, "device", "cpu")).startswith("cuda")
        log.log(logging.INFO if on_gpu else logging.DEBUG,
                "GPU pipeline unavailable (%s); pre/post-processing runs on the host", e)
    except FakeLocatorError as e:
        if pipeline == "device":
            raise
        log.warning("GPU pipeline failed to start (%s); pre/post-processing runs on the host", e)
    return spec.on("host"), None
