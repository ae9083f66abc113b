"""The native pre/post-processing library (``native/``, built by CMake), loaded with ctypes.

It does the runtime's work around the network: a batch of uint8 frames of any sizes → the
normalized (N, 3, h, w) network input, and network maps → full-resolution maps and colour-map
overlays, with the arithmetic of :mod:`fakelocator.contract` (see ``docs/native.md`` for the
exactness guarantees); in ``native`` analysis, images → normalized tiles and tile maps → the
stitched full-resolution map (float32, or the uint8 levels of an 8-bit PNG), with the arithmetic of
:mod:`fakelocator.tiling`. The same functions exist on the CPU (threads) and, when the library was
built with nvcc, on a CUDA stream with device pointers, for the GPU pipeline.

The library is optional. :func:`load` finds it lazily, in this order:

1. the file named by ``FAKELOCATOR_NATIVE_LIB`` (only that one; ``off`` disables the library);
2. the installed package's directory (``fakelocator/runtime/``);
3. ``<repository>/build/`` (where ``make native`` and ``scripts/ensure-venv`` put it).

When none loads, :func:`load` returns None and logs once, on the ``fakelocator`` logger, why and
that the runtime falls back to OpenCV/numpy; :func:`require` raises the reason instead.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fakelocator.contract import COLOR_ORDERS, Preprocessing
from fakelocator.errors import FakeLocatorError

log = logging.getLogger("fakelocator")

LIBRARY_ENV = "FAKELOCATOR_NATIVE_LIB"
#: Must equal FL_ABI_VERSION in native/include/fakelocator_native.h.
ABI_VERSION = 4
#: Largest image or map side the library accepts (FL_MAX_SIDE).
MAX_SIDE = 32767

_OK, _INVALID_ARGUMENT, _NO_CUDA_SUPPORT, _CUDA, _INTERNAL = range(5)
_FLOAT32, _FLOAT16, _UINT8 = 0, 1, 2
_OUT_DTYPES = {np.dtype(np.float32): _FLOAT32, np.dtype(np.float16): _FLOAT16}
_MAP_DTYPES = {np.dtype(np.float32): _FLOAT32, np.dtype(np.uint8): _UINT8}
_WINDOWS = {"linear": 0}


class _Image(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("pitch", ctypes.c_int64), ("height", ctypes.c_int32), ("width", ctypes.c_int32)]


class _PreprocessParams(ctypes.Structure):
    _fields_ = [
        ("out_height", ctypes.c_int32),
        ("out_width", ctypes.c_int32),
        ("swap_rb", ctypes.c_int32),
        ("out_dtype", ctypes.c_int32),
        ("mean255", ctypes.c_float * 3),
        ("inv_std255", ctypes.c_float * 3),
    ]


class _PostprocessItem(ctypes.Structure):
    _fields_ = [
        ("map", ctypes.c_void_p),
        ("map_pitch", ctypes.c_int64),
        ("map_height", ctypes.c_int32),
        ("map_width", ctypes.c_int32),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
        ("map_out", ctypes.c_void_p),
        ("map_out_pitch", ctypes.c_int64),
        ("image", ctypes.c_void_p),
        ("image_pitch", ctypes.c_int64),
        ("overlay_out", ctypes.c_void_p),
        ("overlay_out_pitch", ctypes.c_int64),
        ("levels_out", ctypes.c_void_p),
        ("levels_out_pitch", ctypes.c_int64),
    ]


class _TileItem(ctypes.Structure):
    _fields_ = [("image", _Image), ("first", ctypes.c_int32), ("row0", ctypes.c_int32), ("rows", ctypes.c_int32),
                ("col0", ctypes.c_int32), ("cols", ctypes.c_int32)]


class _StitchItem(ctypes.Structure):
    _fields_ = [
        ("maps", ctypes.c_void_p),
        ("map_pitch", ctypes.c_int64),
        ("tile_stride", ctypes.c_int64),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
        ("tile_h", ctypes.c_int32),
        ("tile_w", ctypes.c_int32),
        ("overlap", ctypes.c_int32),
        ("window", ctypes.c_int32),
        ("out_dtype", ctypes.c_int32),
        ("reserved", ctypes.c_int32),
        ("out", ctypes.c_void_p),
        ("out_pitch", ctypes.c_int64),
    ]


@dataclass(frozen=True)
class DeviceImage:
    """An 8-bit, 3-channel, interleaved (H, W, 3) image in device memory.

    ``pitch`` is the number of bytes from one row to the next (None: ``3 * width``, packed rows).
    """

    ptr: int
    height: int
    width: int
    pitch: int | None = None

    @property
    def row_pitch(self) -> int:
        return 3 * self.width if self.pitch is None else self.pitch


def library_filename() -> str:
    if sys.platform == "win32":
        return "fakelocator_native.dll"
    return "libfakelocator_native.dylib" if sys.platform == "darwin" else "libfakelocator_native.so"


def candidate_paths() -> list[Path]:
    """Where :func:`load` looks, in order (the environment variable, when set, is the only one)."""
    override = os.environ.get(LIBRARY_ENV, "").strip()
    if override:
        return [] if override.lower() == "off" else [Path(override)]
    here = Path(__file__).resolve().parent
    name = library_filename()
    build = here.parent / "build"
    return [here / name, build / name, build / "Release" / name]


class NativeLibrary:
    """The loaded library. Methods validate their arguments and raise FakeLocatorError with the reason.

    ``threads`` arguments: None uses one thread per hardware thread.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            lib = ctypes.CDLL(str(self.path))
        except OSError as e:
            raise FakeLocatorError(f"cannot load {self.path}: {e}") from None
        try:
            lib.fl_abi_version.restype = ctypes.c_int32
            abi = lib.fl_abi_version()
        except AttributeError:
            raise FakeLocatorError(f"{self.path} is not a fakelocator native library (no fl_abi_version)") from None
        if abi != ABI_VERSION:
            raise FakeLocatorError(
                f"{self.path} has ABI version {abi}, this fakelocator needs {ABI_VERSION}: rebuild it (make native)"
            )
        i32, ptr = ctypes.c_int32, ctypes.c_void_p
        signatures = {
            "fl_has_cuda": (i32, []),
            "fl_last_error": (ctypes.c_char_p, []),
            "fl_preprocess_cpu": (i32, [ctypes.POINTER(_Image), i32, ctypes.POINTER(_PreprocessParams), ptr, i32]),
            "fl_postprocess_cpu": (i32, [ctypes.POINTER(_PostprocessItem), i32, ptr, ptr, i32]),
            "fl_cuda_device_count": (i32, [ctypes.POINTER(i32)]),
            "fl_preprocess_cuda": (i32, [ctypes.POINTER(_Image), i32, ctypes.POINTER(_PreprocessParams), ptr, ptr]),
            "fl_postprocess_cuda": (i32, [ctypes.POINTER(_PostprocessItem), i32, ptr, ptr, ptr]),
            "fl_tiles_cpu": (i32, [ctypes.POINTER(_TileItem), i32, i32, ctypes.POINTER(_PreprocessParams), ptr, i32]),
            "fl_stitch_cpu": (i32, [ctypes.POINTER(_StitchItem), i32, i32]),
            "fl_tile_count": (i32, [i32, i32, i32, i32, i32, ctypes.POINTER(i32)]),
            "fl_tiles_cuda": (i32, [ctypes.POINTER(_TileItem), i32, i32, ctypes.POINTER(_PreprocessParams), ptr, ptr]),
            "fl_stitch_cuda": (i32, [ctypes.POINTER(_StitchItem), i32, ptr]),
        }
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self._lib = lib
        #: Whether the CUDA entry points were compiled in (not whether a GPU is present).
        self.has_cuda = bool(lib.fl_has_cuda())

    def __repr__(self) -> str:
        return f"NativeLibrary({str(self.path)!r}, has_cuda={self.has_cuda})"

    def _call(self, what: str, status: int) -> None:
        if status == _OK:
            return
        reason = self._lib.fl_last_error().decode("utf-8", "replace")
        if status == _NO_CUDA_SUPPORT:
            raise FakeLocatorError(f"native {what}: {reason}; rebuild on a machine with the CUDA toolkit (make native)")
        if status == _CUDA:
            raise FakeLocatorError(
                f"native {what} on the GPU failed: {reason}. Is an NVIDIA driver installed and a GPU visible "
                "(nvidia-smi), and are the device pointers and stream valid?"
            )
        raise FakeLocatorError(f"native {what}: {reason}")

    # ---------------------------------------------------------------- CPU, numpy arrays

    def preprocess(
        self,
        images: Sequence[np.ndarray],
        color_order: str,
        contract: Preprocessing,
        out: np.ndarray | None = None,
        *,
        start: int = 0,
        threads: int | None = None,
    ) -> np.ndarray:
        """uint8 (H_i, W_i, 3) images in ``color_order`` → network input, written into ``out``.

        Image ``k`` goes to ``out[start + k]``. ``out`` is a C-contiguous (N, 3, h, w) float32 or
        float16 array (None: a new float32 one with N = len(images)). Images may be row-strided
        views (crops, ``frame[y0:y1, x0:x1]``) but their pixels must be packed (strides (*, 3, 1)).
        Returns ``out``.
        """
        params = _preprocess_params(color_order, contract, None)
        if out is None:
            out = np.empty((len(images), 3, contract.height, contract.width), np.float32)
        _check_output(out, (None, 3, contract.height, contract.width), tuple(_OUT_DTYPES), "preprocess output")
        params.out_dtype = _OUT_DTYPES[out.dtype]
        if start < 0 or start + len(images) > out.shape[0]:
            raise FakeLocatorError(
                f"preprocess: {len(images)} images from batch index {start} do not fit an output of batch {out.shape[0]}"
            )
        descriptors = (_Image * max(1, len(images)))()
        for k, image in enumerate(images):
            descriptors[k] = _host_image(image, f"image {k}")
        first = out[start:].ctypes.data if len(images) else out.ctypes.data
        self._call("preprocess", self._lib.fl_preprocess_cpu(descriptors, len(images), ctypes.byref(params), first, _threads(threads)))
        return out

    def upsample(self, map_hw: np.ndarray, height: int, width: int, out: np.ndarray | None = None, *, threads: int | None = None) -> np.ndarray:
        """A float32 (h, w) map → float32 (height, width) by the contract's bilinear rule, clipped to [0, 1]."""
        maps, _ = self.postprocess([map_hw], [(height, width)], maps_out=None if out is None else [out], threads=threads)
        return maps[0]

    def upsample_u8(self, map_hw: np.ndarray, height: int, width: int, out: np.ndarray | None = None, *, threads: int | None = None) -> np.ndarray:
        """:meth:`upsample` as 8-bit levels ``floor(clip(m, 0, 1) * 255 + 0.5)`` (NaN → 0): uint8 (height, width),
        what an 8-bit PNG map stores, without a float32 full-resolution map in between."""
        out = np.empty((height, width), np.uint8) if out is None else out
        self.postprocess([map_hw], [(height, width)], maps_out=False, levels_out=[out], threads=threads)
        return out

    def overlay(
        self,
        image_bgr: np.ndarray,
        map_hw: np.ndarray,
        alpha: float | np.ndarray = 0.5,
        lut: np.ndarray | None = None,
        *,
        out: np.ndarray | None = None,
        map_out: np.ndarray | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """The colour-map overlay of a (h, w) map upsampled onto a uint8 (H, W, 3) BGR image.

        ``lut`` is the 256 × 3 uint8 BGR colour table (required); ``alpha`` the heat map's opacity,
        one number for every level or a 256-entry table (``runtime.overlay.opacity_table``: transparent
        where the map is near 0). With ``map_out`` (float32 (H, W)),
        the upsampled map is written there too, in the same pass. Returns the uint8 (H, W, 3) overlay.
        """
        _, overlays = self.postprocess(
            [map_hw],
            images=[image_bgr],
            alpha=alpha,
            lut=lut,
            maps_out=[map_out] if map_out is not None else False,
            overlays_out=None if out is None else [out],
            threads=threads,
        )
        return overlays[0]

    def postprocess(
        self,
        maps: Sequence[np.ndarray] | np.ndarray,
        sizes: Sequence[tuple[int, int]] | None = None,
        *,
        images: Sequence[np.ndarray] | None = None,
        alpha: float | np.ndarray = 0.5,
        lut: np.ndarray | None = None,
        maps_out: Sequence[np.ndarray] | bool | None = None,
        overlays_out: Sequence[np.ndarray] | None = None,
        levels_out: Sequence[np.ndarray] | None = None,
        threads: int | None = None,
    ) -> tuple[list[np.ndarray] | None, list[np.ndarray] | None]:
        """A batch of maps → full-resolution maps and, with ``images``, colour-map overlays, in one pass.

        Args:
            maps: float32 (h, w) maps, or an (N, 1, h, w) / (N, h, w) array (a network output).
            sizes: (H, W) of each output; taken from ``images`` when those are given.
            images: uint8 (H, W, 3) BGR images to overlay the maps on (None: no overlays).
            alpha, lut: the overlay's opacity in [0, 1] (one number, or 256 numbers: one per map
                level, ``runtime.overlay.opacity_table``) and the 256 × 3 uint8 BGR colour table.
            maps_out: float32 (H, W) arrays to write the maps into; None (or True) allocates
                them; False skips the full-resolution maps (overlays only).
            overlays_out: uint8 (H, W, 3) arrays for the overlays; None allocates them.
            levels_out: uint8 (H, W) arrays to write the maps' 8-bit levels into
                (``floor(clip(m, 0, 1) * 255 + 0.5)``, NaN → 0), in the same pass; None: none.

        Returns:
            (maps or None, overlays or None).
        """
        maps = _map_list(maps)
        n = len(maps)
        if images is not None:
            if len(images) != n:
                raise FakeLocatorError(f"postprocess: {n} maps but {len(images)} images")
            for k, image in enumerate(images):
                _check_packed_image(image, f"image {k}")
            sizes = [image.shape[:2] for image in images]
        if sizes is None or len(sizes) != n:
            raise FakeLocatorError(f"postprocess: need one (height, width) per map ({n}), got {sizes!r}")
        sizes = [_size(s, f"output size {k}") for k, s in enumerate(sizes)]
        opacity = None
        if images is not None:
            lut = _check_lut(lut)
            opacity = _check_opacity(alpha)
        want_maps = maps_out is not False
        if maps_out is None or isinstance(maps_out, bool):
            maps_out = [np.empty(s, np.float32) for s in sizes] if want_maps else None
        if images is not None and overlays_out is None:
            overlays_out = [np.empty((*s, 3), np.uint8) for s in sizes]
        if maps_out is None and images is None and levels_out is None:
            raise FakeLocatorError("postprocess: nothing to do: maps_out=False, no levels_out and no images to overlay")
        for name, arrays in (("maps_out", maps_out), ("overlays_out", overlays_out), ("levels_out", levels_out)):
            if arrays is not None and len(arrays) != n:
                raise FakeLocatorError(f"postprocess: {name} has {len(arrays)} arrays for {n} maps")

        items = (_PostprocessItem * max(1, n))()
        for k, (m, (h, w)) in enumerate(zip(maps, sizes)):
            item = items[k]
            item.map, item.map_pitch = _host_map(m, f"map {k}")
            item.map_height, item.map_width = m.shape
            item.height, item.width = h, w
            if maps_out is not None:
                _check_output(maps_out[k], (h, w), (np.float32,), f"map output {k}")
                item.map_out, item.map_out_pitch = maps_out[k].ctypes.data, 4 * w
            if images is not None:
                _check_output(overlays_out[k], (h, w, 3), (np.uint8,), f"overlay output {k}")
                item.image, item.image_pitch = images[k].ctypes.data, images[k].strides[0]
                item.overlay_out, item.overlay_out_pitch = overlays_out[k].ctypes.data, 3 * w
            if levels_out is not None:
                _check_output(levels_out[k], (h, w), (np.uint8,), f"levels output {k}")
                item.levels_out, item.levels_out_pitch = levels_out[k].ctypes.data, w
        lut_ptr = lut.ctypes.data if lut is not None else None
        opacity_ptr = opacity.ctypes.data if opacity is not None else None
        status = self._lib.fl_postprocess_cpu(items, n, lut_ptr, opacity_ptr, _threads(threads))
        self._call("postprocess", status)
        return (list(maps_out) if maps_out is not None else None), (list(overlays_out) if images is not None else None)

    # ---------------------------------------------------------------- native analysis, CPU

    def tile_count(self, height: int, width: int, tile: tuple[int, int], overlap: int) -> int:
        """How many tiles an image of (height, width) takes (``fakelocator.tiling.tile_count``)."""
        count = ctypes.c_int32(0)
        th, tw = _size(tile, "tile size")
        self._call("tile_count", self._lib.fl_tile_count(int(height), int(width), th, tw, int(overlap), ctypes.byref(count)))
        return count.value

    def tiles(
        self,
        images: Sequence[np.ndarray],
        color_order: str,
        contract: Preprocessing,
        out: np.ndarray | None = None,
        *,
        overlap: int | None = None,
        start: int = 0,
        rects: Sequence[tuple[int, int, int, int] | None] | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """uint8 (H_i, W_i, 3) images in ``color_order`` → their normalized tiles (``native`` analysis).

        Each image is cut into contract-size tiles with ``overlap`` (None: the contract's
        ``tile_overlap``) by the rule of ``fakelocator.tiling``; image 0's tiles go to ``out[start:]``
        in layout order, image 1's right after, and so on. ``rects[k]`` = (row0, rows, col0, cols)
        limits image k to that rectangle of its tile rows and columns (None: all its tiles), e.g.
        the part of a large image that fits the rest of a batch. ``out`` is a C-contiguous
        (N, 3, h, w) float32 or float16 array (None: a new float32 one holding exactly the tiles).
        Returns ``out``.
        """
        params = _preprocess_params(color_order, contract, None)
        overlap = contract.tile_overlap if overlap is None else overlap
        if rects is not None and len(rects) != len(images):
            raise FakeLocatorError(f"tiles: {len(images)} images but {len(rects)} tile rectangles")
        rects = [None] * len(images) if rects is None else list(rects)
        counts = []
        for k, image in enumerate(images):
            h, w = _image_size(image, f"image {k}")
            ny, nx = (self.tile_count(h, 1, contract.size, overlap), self.tile_count(1, w, contract.size, overlap))
            if rects[k] is None:
                rects[k] = (0, ny, 0, nx)
            row0, rows, col0, cols = (int(v) for v in rects[k])
            if not (0 <= row0 and rows >= 1 and row0 + rows <= ny and 0 <= col0 and cols >= 1 and col0 + cols <= nx):
                raise FakeLocatorError(f"tiles: image {k}'s tile rectangle {rects[k]} (row0, rows, col0, cols) is outside its {ny} x {nx} tiles")
            rects[k] = (row0, rows, col0, cols)
            counts.append(rows * cols)
        if out is None:
            out = np.empty((start + sum(counts), 3, contract.height, contract.width), np.float32)
        _check_output(out, (None, 3, contract.height, contract.width), tuple(_OUT_DTYPES), "tiles output")
        params.out_dtype = _OUT_DTYPES[out.dtype]
        if start < 0 or start + sum(counts) > out.shape[0]:
            raise FakeLocatorError(f"tiles: {sum(counts)} tiles from batch index {start} do not fit an output of batch {out.shape[0]}")
        items = (_TileItem * max(1, len(images)))()
        first = start
        for k, (image, count) in enumerate(zip(images, counts)):
            items[k].image, items[k].first = _host_image(image, f"image {k}"), first
            items[k].row0, items[k].rows, items[k].col0, items[k].cols = rects[k]
            first += count
        status = self._lib.fl_tiles_cpu(items, len(images), int(overlap), ctypes.byref(params), out.ctypes.data, _threads(threads))
        self._call("tiles", status)
        return out

    def stitch(
        self,
        maps: np.ndarray,
        size: tuple[int, int],
        overlap: int,
        out: np.ndarray | None = None,
        *,
        dtype=np.float32,
        window: str = "linear",
        threads: int | None = None,
    ) -> np.ndarray:
        """One image's (n, h, w) (or (n, 1, h, w)) float32 tile maps → its (H, W) map (``native`` analysis).

        ``size`` = (H, W). float32: the blended map clipped to [0, 1]; uint8: its 8-bit levels
        ``floor(clip(m, 0, 1) * 255 + 0.5)`` (NaN → 0). ``out``: a C-contiguous (H, W) array of that
        dtype to overwrite (None: a new one). Returns it.
        """
        return self.stitch_batch([maps], [size], overlap, None if out is None else [out], dtype=dtype, window=window, threads=threads)[0]

    def stitch_batch(
        self,
        maps: Sequence[np.ndarray],
        sizes: Sequence[tuple[int, int]],
        overlap: int,
        outs: Sequence[np.ndarray] | None = None,
        *,
        dtype=np.float32,
        window: str = "linear",
        threads: int | None = None,
    ) -> list[np.ndarray]:
        """:meth:`stitch` for several images in one call (one pool of threads over all their rows)."""
        n = len(maps)
        if len(sizes) != n or (outs is not None and len(outs) != n):
            raise FakeLocatorError(f"stitch: {n} tile-map arrays, {len(sizes)} sizes and {n if outs is None else len(outs)} outputs")
        dtype = np.dtype(dtype)
        if dtype not in _MAP_DTYPES:
            raise FakeLocatorError(f"a stitched map is float32 or uint8, got {dtype}")
        sizes = [_size(s, f"stitch size {k}") for k, s in enumerate(sizes)]
        if outs is None:
            outs = [np.empty(s, dtype) for s in sizes]
        items = (_StitchItem * max(1, n))()
        for k, (m, (h, w), o) in enumerate(zip(maps, sizes, outs)):
            m = _tile_maps(m, f"tile maps {k}")
            th, tw = m.shape[1:]
            want = self.tile_count(h, w, (th, tw), overlap)
            if m.shape[0] != want:
                raise FakeLocatorError(f"tile maps {k}: {m.shape[0]} maps, but a {h}x{w} image takes {want} tiles of {th}x{tw} (overlap {overlap})")
            _check_output(o, (h, w), (dtype,), f"stitch output {k}")
            items[k] = _StitchItem(m.ctypes.data, m.strides[1], m.strides[0], h, w, th, tw, int(overlap), _window(window),
                                   _MAP_DTYPES[dtype], 0, o.ctypes.data, o.strides[0])
        self._call("stitch", self._lib.fl_stitch_cpu(items, n, _threads(threads)))
        return list(outs)

    # ---------------------------------------------------------------- CUDA, device pointers

    def preprocess_device(
        self,
        images: Sequence[DeviceImage],
        color_order: str,
        contract: Preprocessing,
        out_ptr: int,
        *,
        dtype=np.float32,
        start: int = 0,
        stream=None,
    ) -> None:
        """:meth:`preprocess` on the GPU, enqueued on ``stream``; returns before it runs.

        ``out_ptr`` is a device buffer holding (N, 3, h, w) ``dtype`` (float32 or float16), e.g. a
        TensorRT input binding; image ``k`` goes to batch index ``start + k``. ``stream``: a
        :class:`fakelocator.runtime.cuda.Stream`, a raw ``cudaStream_t`` handle, or None (the
        legacy default stream).
        """
        params = _preprocess_params(color_order, contract, np.dtype(dtype))
        if start < 0:
            raise FakeLocatorError(f"preprocess_device: start must be >= 0, got {start}")
        out = _device_ptr(out_ptr, "preprocess_device output")
        out += start * 3 * contract.height * contract.width * np.dtype(dtype).itemsize
        descriptors = (_Image * max(1, len(images)))()
        for k, image in enumerate(images):
            descriptors[k] = _device_image(image, f"device image {k}")
        status = self._lib.fl_preprocess_cuda(descriptors, len(images), ctypes.byref(params), out, _stream_handle(stream))
        self._call("preprocess", status)

    def postprocess_device(
        self,
        maps_ptr: int,
        map_size: tuple[int, int],
        sizes: Sequence[tuple[int, int]],
        *,
        maps_out: Sequence[int] | None = None,
        images: Sequence[DeviceImage] | None = None,
        overlays_out: Sequence[int] | None = None,
        levels_out: Sequence[int] | None = None,
        alpha: float | np.ndarray = 0.5,
        lut: np.ndarray | None = None,
        stream=None,
    ) -> None:
        """:meth:`postprocess` on the GPU, enqueued on ``stream``; returns before it runs.

        ``maps_ptr`` is a device buffer holding (N, 1, h, w) float32 maps (e.g. the TensorRT
        ``map`` output binding), ``map_size`` = (h, w), ``sizes`` the (H, W) of each image.
        ``maps_out[k]``: device buffer for a packed float32 (H, W) map (None: no maps);
        ``images[k]`` with ``overlays_out[k]`` (a packed uint8 (H, W, 3) buffer): the overlays;
        ``levels_out[k]``: device buffer for the packed uint8 (H, W) 8-bit levels of the map.
        """
        n = len(sizes)
        map_h, map_w = _size(map_size, "map size")
        base = _device_ptr(maps_ptr, "postprocess_device maps")
        if maps_out is None and overlays_out is None and levels_out is None:
            raise FakeLocatorError("postprocess_device: give maps_out, levels_out, overlays_out (with images), or several")
        if (images is None) != (overlays_out is None):
            raise FakeLocatorError("postprocess_device: overlays need both images and overlays_out")
        for name, seq in (("maps_out", maps_out), ("images", images), ("overlays_out", overlays_out), ("levels_out", levels_out)):
            if seq is not None and len(seq) != n:
                raise FakeLocatorError(f"postprocess_device: {name} has {len(seq)} entries for {n} sizes")
        opacity = None
        if images is not None:
            lut = _check_lut(lut)
            opacity = _check_opacity(alpha)
        items = (_PostprocessItem * max(1, n))()
        for k, s in enumerate(sizes):
            h, w = _size(s, f"output size {k}")
            item = items[k]
            item.map, item.map_pitch = base + k * map_h * map_w * 4, 4 * map_w
            item.map_height, item.map_width, item.height, item.width = map_h, map_w, h, w
            if maps_out is not None:
                item.map_out, item.map_out_pitch = _device_ptr(maps_out[k], f"maps_out {k}"), 4 * w
            if images is not None:
                image = images[k]
                if (image.height, image.width) != (h, w):
                    raise FakeLocatorError(f"device image {k} is {image.height}x{image.width} but its size is {h}x{w}")
                item.image = _device_image(image, f"device image {k}").data
                item.image_pitch = image.row_pitch
                item.overlay_out, item.overlay_out_pitch = _device_ptr(overlays_out[k], f"overlays_out {k}"), 3 * w
            if levels_out is not None:
                item.levels_out, item.levels_out_pitch = _device_ptr(levels_out[k], f"levels_out {k}"), w
        lut_ptr = lut.ctypes.data if lut is not None else None
        opacity_ptr = opacity.ctypes.data if opacity is not None else None
        status = self._lib.fl_postprocess_cuda(items, n, lut_ptr, opacity_ptr, _stream_handle(stream))
        self._call("postprocess", status)

    def upsample_device(self, maps_ptr: int, map_size: tuple[int, int], sizes: Sequence[tuple[int, int]], maps_out: Sequence[int], *, stream=None) -> None:
        """:meth:`postprocess_device` without overlays: maps to full resolution on the GPU."""
        self.postprocess_device(maps_ptr, map_size, sizes, maps_out=maps_out, stream=stream)

    def tiles_device(
        self,
        images: Sequence[DeviceImage],
        color_order: str,
        contract: Preprocessing,
        out_ptr: int,
        *,
        overlap: int | None = None,
        dtype=np.float32,
        start: int = 0,
        rects: Sequence[tuple[int, int, int, int] | None] | None = None,
        stream=None,
    ) -> list[int]:
        """:meth:`tiles` on the GPU, enqueued on ``stream``; returns how many tiles each image wrote.

        ``out_ptr`` holds (N, 3, h, w) ``dtype`` (float32 or float16), e.g. a TensorRT input binding;
        image 0's tiles go to batch index ``start`` onwards, the next image's right after.
        ``rects[k]`` = (row0, rows, col0, cols) limits image k to that rectangle of its tile layout
        (None: all its tiles), as in :meth:`tiles`; an image may be listed once per rectangle. The
        caller makes sure they fit (the counts are :meth:`tile_count`).
        """
        params = _preprocess_params(color_order, contract, np.dtype(dtype))
        overlap = contract.tile_overlap if overlap is None else overlap
        if start < 0:
            raise FakeLocatorError(f"tiles_device: start must be >= 0, got {start}")
        if rects is not None and len(rects) != len(images):
            raise FakeLocatorError(f"tiles_device: {len(images)} images but {len(rects)} tile rectangles")
        out = _device_ptr(out_ptr, "tiles_device output")
        items = (_TileItem * max(1, len(images)))()
        counts, first = [], start
        for k, image in enumerate(images):
            items[k].image = _device_image(image, f"device image {k}")
            items[k].first = first
            rect = None if rects is None else rects[k]
            if rect is None:
                counts.append(self.tile_count(image.height, image.width, contract.size, overlap))
            else:
                items[k].row0, items[k].rows, items[k].col0, items[k].cols = (int(v) for v in rect)
                counts.append(int(rect[1]) * int(rect[3]))
            first += counts[-1]
        status = self._lib.fl_tiles_cuda(items, len(images), int(overlap), ctypes.byref(params), out, _stream_handle(stream))
        self._call("tiles", status)
        return counts

    def stitch_device(
        self,
        maps_ptr: int,
        tile_size: tuple[int, int],
        sizes: Sequence[tuple[int, int]],
        overlap: int,
        outs: Sequence[int],
        *,
        first_tiles: Sequence[int] | None = None,
        dtype=np.float32,
        window: str = "linear",
        stream=None,
    ) -> None:
        """:meth:`stitch` on the GPU for several images, enqueued on ``stream``; returns before it runs.

        ``maps_ptr`` holds (N, 1, h, w) float32 tile maps (e.g. the ``map`` output binding), image
        ``k``'s tiles from batch index ``first_tiles[k]`` (None: one image after the other from 0).
        ``outs[k]``: a device buffer for image ``k``'s packed (H, W) float32 or uint8 map.
        """
        th, tw = _size(tile_size, "tile size")
        base = _device_ptr(maps_ptr, "stitch_device maps")
        dtype = np.dtype(dtype)
        if dtype not in _MAP_DTYPES:
            raise FakeLocatorError(f"a stitched map is float32 or uint8, got {dtype}")
        n = len(sizes)
        if len(outs) != n or (first_tiles is not None and len(first_tiles) != n):
            raise FakeLocatorError(f"stitch_device: {n} sizes but {len(outs)} outputs"
                                   + ("" if first_tiles is None else f" and {len(first_tiles)} first tiles"))
        items = (_StitchItem * max(1, n))()
        first = 0
        for k, s in enumerate(sizes):
            h, w = _size(s, f"stitch size {k}")
            if first_tiles is not None:
                first = int(first_tiles[k])
                if first < 0:
                    raise FakeLocatorError(f"stitch_device: first tile {k} is negative ({first})")
            items[k] = _StitchItem(base + first * th * tw * 4, 4 * tw, 4 * th * tw, h, w, th, tw, int(overlap), _window(window),
                                   _MAP_DTYPES[dtype], 0, _device_ptr(outs[k], f"stitch_device output {k}"), w * dtype.itemsize)
            first += self.tile_count(h, w, (th, tw), overlap)
        self._call("stitch", self._lib.fl_stitch_cuda(items, n, _stream_handle(stream)))


# -------------------------------------------------------------------- loading

_load_lock = threading.Lock()
_loaded: NativeLibrary | None = None
_unavailable: str | None = None


def load() -> NativeLibrary | None:
    """The native library, or None (logged once, with the reason) when none can be loaded."""
    global _loaded, _unavailable
    with _load_lock:
        if _loaded is None and _unavailable is None:
            _loaded, _unavailable, broken = _find()
            if _loaded is not None:
                log.debug("native pre/post-processing: %s", _loaded)
            else:
                # Not built (or switched off) is a normal setup; a library that is there but
                # cannot be used is a mistake to fix.
                log.log(
                    logging.WARNING if broken else logging.INFO,
                    "native pre/post-processing unavailable (%s); the runtime falls back to OpenCV/numpy",
                    _unavailable,
                )
        return _loaded


def require() -> NativeLibrary:
    """The native library, or FakeLocatorError saying why it is unavailable."""
    lib = load()
    if lib is None:
        raise FakeLocatorError(f"the native pre/post-processing library is unavailable: {_unavailable}")
    return lib


def _find() -> tuple[NativeLibrary | None, str | None, bool]:
    """(library, None, False), or (None, why not, whether a library was there but unusable)."""
    override = os.environ.get(LIBRARY_ENV, "").strip()
    if override.lower() == "off":
        return None, f"disabled by {LIBRARY_ENV}=off", False
    problems, broken = [], False
    for path in candidate_paths():
        if not path.is_file():
            problems.append(f"no {path}")
            continue
        try:
            return NativeLibrary(path), None, False
        except FakeLocatorError as e:
            if override:
                return None, f"{LIBRARY_ENV}: {e}", True
            problems.append(str(e))
            broken = True
    if override:
        return None, f"{LIBRARY_ENV} names {override}, which does not exist", True
    return None, "; ".join(problems) + " (build it with `make native`)", broken


# -------------------------------------------------------------------- argument checks


def _threads(threads: int | None) -> int:
    if threads is None:
        return 0
    if not isinstance(threads, (int, np.integer)) or threads < 1:
        raise FakeLocatorError(f"threads must be a positive integer or None, got {threads!r}")
    return int(threads)


def _size(size, what: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise FakeLocatorError(f"{what} must be (height, width), got {size!r}") from None
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise FakeLocatorError(f"{what} must be 1..{MAX_SIDE} on each side, got {h}x{w}")
    return h, w


def _preprocess_params(color_order: str, contract: Preprocessing, dtype: np.dtype | None) -> _PreprocessParams:
    if not isinstance(contract, Preprocessing):
        raise FakeLocatorError(f"preprocess needs a Preprocessing contract, got {type(contract).__name__}")
    if color_order not in COLOR_ORDERS:
        raise FakeLocatorError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    dtype = np.dtype(np.float32) if dtype is None else np.dtype(dtype)
    if dtype not in _OUT_DTYPES:
        raise FakeLocatorError(f"the network input must be float32 or float16, got {dtype}")
    _size(contract.size, "network input size")
    # Exactly the float32 constants of fakelocator.contract.to_network_input.
    mean255 = np.asarray(contract.mean, np.float32) * np.float32(255.0)
    inv_std255 = np.float32(1.0) / (np.asarray(contract.std, np.float32) * np.float32(255.0))
    params = _PreprocessParams(contract.height, contract.width, int(color_order != contract.color_order), _OUT_DTYPES[dtype])
    params.mean255[:] = [float(v) for v in mean255]
    params.inv_std255[:] = [float(v) for v in inv_std255]
    return params


def _check_packed_image(image: np.ndarray, what: str) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise FakeLocatorError(
            f"{what} must be a uint8 array of shape (H, W, 3), got {getattr(image, 'dtype', type(image).__name__)} "
            f"{getattr(image, 'shape', '')}"
        )
    h, w = image.shape[:2]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise FakeLocatorError(f"{what} must be 1..{MAX_SIDE} pixels on each side, got {h}x{w}")
    if image.strides[1:] != (3, 1) or image.strides[0] < 3 * w:
        raise FakeLocatorError(
            f"{what} has strides {image.strides}: its pixels must be packed, strides (pitch >= 3 * width, 3, 1); "
            "rows may be a crop of a larger frame. Pass color_order instead of reversing channels, "
            "or np.ascontiguousarray(image)"
        )


def _host_image(image: np.ndarray, what: str) -> _Image:
    _check_packed_image(image, what)
    return _Image(image.ctypes.data, image.strides[0], image.shape[0], image.shape[1])


def _image_size(image, what: str) -> tuple[int, int]:
    _check_packed_image(image, what)
    return image.shape[0], image.shape[1]


def _window(window: str) -> int:
    if window not in _WINDOWS:
        raise FakeLocatorError(f"tile window must be one of {tuple(_WINDOWS)}, got {window!r}")
    return _WINDOWS[window]


def _tile_maps(maps, what: str) -> np.ndarray:
    """(n, h, w) or (n, 1, h, w) float32 tile maps with packed rows → an (n, h, w) view."""
    if isinstance(maps, np.ndarray) and maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if not (isinstance(maps, np.ndarray) and maps.dtype == np.float32 and maps.ndim == 3 and maps.shape[0] >= 1):
        raise FakeLocatorError(f"{what} must be a float32 (n, h, w) or (n, 1, h, w) array, got "
                               f"{getattr(maps, 'dtype', type(maps).__name__)} {getattr(maps, 'shape', '')}")
    _size(maps.shape[1:], f"{what} tile size")
    if maps.strides[2] != 4 or maps.strides[1] < 4 * maps.shape[2] or maps.strides[0] < maps.strides[1] * maps.shape[1]:
        raise FakeLocatorError(f"{what} has strides {maps.strides}: rows must be packed and tiles must not overlap in memory")
    return maps


def _map_list(maps) -> list[np.ndarray]:
    if isinstance(maps, np.ndarray):
        if maps.ndim == 4 and maps.shape[1] == 1:
            maps = maps[:, 0]
        if maps.ndim != 3:
            raise FakeLocatorError(f"maps must be (N, 1, h, w), (N, h, w) or a list of (h, w), got shape {maps.shape}")
    return list(maps)


def _host_map(m: np.ndarray, what: str) -> tuple[int, int]:
    if not (isinstance(m, np.ndarray) and m.dtype == np.float32 and m.ndim == 2):
        raise FakeLocatorError(f"{what} must be a float32 (h, w) array, got {getattr(m, 'dtype', type(m).__name__)} {getattr(m, 'shape', '')}")
    _size(m.shape, f"{what} size")
    if m.strides[1] != 4 or m.strides[0] < 4 * m.shape[1]:
        raise FakeLocatorError(f"{what} has strides {m.strides}: its rows must be packed (row stride >= 4 * width, 4)")
    return m.ctypes.data, m.strides[0]


def _check_output(out: np.ndarray, shape: tuple, dtypes: tuple, what: str) -> None:
    ok_shape = isinstance(out, np.ndarray) and out.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(out.shape, shape)
    )
    if not ok_shape or out.dtype not in [np.dtype(d) for d in dtypes]:
        names = " or ".join(np.dtype(d).name for d in dtypes)
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise FakeLocatorError(
            f"{what} must be a {names} array of shape {want}, got {getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise FakeLocatorError(f"{what} must be C-contiguous and writeable")


def _check_lut(lut) -> np.ndarray:
    if lut is None:
        raise FakeLocatorError("overlays need the colour table: a 256 x 3 uint8 BGR array (e.g. OpenCV's COLORMAP_JET)")
    lut = np.asarray(lut)
    if lut.dtype != np.uint8 or lut.size != 256 * 3 or lut.shape[-1] != 3:
        raise FakeLocatorError(f"the colour table must be 256 x 3 uint8 BGR, got {lut.dtype} {lut.shape}")
    return np.ascontiguousarray(lut.reshape(256, 3))


def _check_opacity(alpha) -> np.ndarray:
    """One opacity for every map level, or a 256-entry table → contiguous float32 (256,) in [0, 1]."""
    try:
        a = np.asarray(alpha, dtype=np.float32)
    except (TypeError, ValueError):
        raise FakeLocatorError(f"overlay alpha must be a number or 256 numbers in [0, 1], got {alpha!r}") from None
    if a.ndim == 0:
        if not 0.0 <= float(a) <= 1.0:
            raise FakeLocatorError(f"overlay alpha must be in [0, 1], got {alpha}")
        return np.full(256, a, np.float32)
    if a.shape != (256,):
        raise FakeLocatorError(f"the opacity table must hold 256 values (one per map level), got shape {a.shape}")
    if not ((a >= 0.0) & (a <= 1.0)).all():
        raise FakeLocatorError("the opacity table's values must be in [0, 1]")
    return np.ascontiguousarray(a)


def _device_ptr(ptr, what: str) -> int:
    value = int(ptr)
    if value <= 0:
        raise FakeLocatorError(f"{what}: not a device pointer ({ptr!r})")
    return value


def _device_image(image: DeviceImage, what: str) -> _Image:
    if not isinstance(image, DeviceImage):
        raise FakeLocatorError(f"{what} must be a DeviceImage, got {type(image).__name__}")
    h, w = _size((image.height, image.width), f"{what} size")
    if image.row_pitch < 3 * w:
        raise FakeLocatorError(f"{what}: row pitch {image.row_pitch} is smaller than 3 * width ({3 * w})")
    return _Image(_device_ptr(image.ptr, what), image.row_pitch, h, w)


def _stream_handle(stream) -> int | None:
    if stream is None:
        return None
    handle = getattr(stream, "handle", stream)
    return int(handle) or None
