"""The ``native`` analysis rule: an image cut into tiles at its own scale, tile maps stitched back.

Part of the preprocessing contract (``fakelocator.contract``): training, the runtime, the native
kernels and Triton all follow these functions, which are the reference they are tested against.

Why: the network looks for the trace that upsampling leaves in pixels. Resizing a large image to
the network's size aliases that trace away (halving with half-pixel centres averages each pair of
pixels, which cancels a period-2 pattern), and enlarging a small one adds a bilinear trace of its
own. In ``native`` analysis the network sees the image's own pixels, tile by tile.

The rule, exactly (``tile`` = the network's input size along an axis, ``overlap`` = ``o``):

1. **Layout, per axis** (``tile_starts``). An axis of length ``L <= tile`` is one tile at 0. A
   longer axis gets ``n = ceil((L - tile) / (tile - o)) + 1`` tiles whose starts are spread evenly
   from 0 to ``L - tile`` (``round(i * (L - tile) / (n - 1))``), so the last tile ends at the image's
   edge and neighbours overlap by at least ``o``. The image's tiles are the grid of both axes'
   starts, row-major (y outer, x inner).
2. **Tiles** (``extract_tiles``). A tile is the image's pixels at its start; where the image is
   smaller than the tile, the rest is filled by mirroring the image (numpy ``"symmetric"``:
   ``abc|cba``), never by resampling. Each tile is normalized exactly like a ``fit`` input
   (``(x / 255 - mean) / std``, channels in the contract's order).
3. **Stitching** (``stitch``). Each tile's map covers its tile's pixels inside the image (the padded
   part is dropped). Where tiles overlap, maps are blended with the separable ``linear`` window: along
   an axis a tile's raw weight at its local index ``i`` is ``min(1, (i + 0.5) / o, (tile - i - 0.5) / o)``
   (a ramp over the ``o`` pixels at each side, flat in between, never 0), and at each pixel the weights
   of the tiles covering it are divided by their sum (``axis_weights``). The result is a crossfade with
   no seam: a pixel covered by one tile takes that tile's value exactly (weight ``w / w = 1``), and a
   constant map stays constant.
4. **Score** (``pool_scores``): the tile scores pooled by the contract's rule (see ``POOLINGS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fakelocator.errors import FakeLocatorError

WINDOWS = ("linear",)
PADS = ("symmetric",)
#: How tile scores become the image's score:
#: ``max``: the most suspicious tile (a small edit lives in one tile; the default);
#: ``mean``: the average tile (robust to one false tile, dilutes a small edit in a large image);
#: ``top2``: the mean of the two highest (between the two: one noisy tile alone cannot decide).
POOLINGS = ("max", "mean", "top2")


def tile_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Start offsets of the tiles along one axis of ``length`` pixels (rule 1 of the module)."""
    if length < 1 or tile < 1:
        raise FakeLocatorError(f"tiling needs a positive length and tile size, got {length} and {tile}")
    if not 0 <= overlap < tile:
        raise FakeLocatorError(f"tile overlap must be in [0, tile size), got {overlap} for tiles of {tile}")
    if length <= tile:
        return (0,)
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    span = length - tile
    return tuple(int(round(i * span / (n - 1))) for i in range(n))


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one (height, width) image lie."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @classmethod
    def of(cls, height: int, width: int, tile_h: int, tile_w: int, overlap: int) -> "TileGrid":
        return cls(height, width, tile_h, tile_w, overlap,
                   tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap))

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Each tile's (x0, y0, x1, y1) inside the image, row-major; x1 - x0 < tile_w only for padded tiles."""
        return [(x, y, min(x + self.tile_w, self.width), min(y + self.tile_h, self.height))
                for y in self.ys for x in self.xs]


def span_rects(ny: int, nx: int, start: int, count: int) -> list[tuple[int, int, int, int]]:
    """Tiles ``start:start + count`` of an ``ny`` × ``nx`` tile layout (row-major) as at most three
    rectangles (row0, rows, col0, cols), in layout order: the rest of a first row, whole rows, the
    start of a last row. How a batch takes part of a large image's tiles (the native kernels'
    ``rects`` are these)."""
    if not (0 <= start and count >= 1 and start + count <= ny * nx):
        raise FakeLocatorError(f"tiles {start}:{start + count} are outside a layout of {ny} x {nx} tiles")
    out, k, end = [], start, start + count
    while k < end:
        row, col = divmod(k, nx)
        if col == 0 and end - k >= nx:  # whole rows
            rows = (end - k) // nx
            out.append((row, rows, 0, nx))
            k += rows * nx
        else:  # part of one row
            stop = min(nx, col + end - k)
            out.append((row, 1, col, stop - col))
            k += stop - col
    return out


def tile_count(height: int, width: int, tile_h: int, tile_w: int, overlap: int) -> int:
    """How many tiles an image of (height, width) takes, without building anything."""
    return len(tile_starts(height, tile_h, overlap)) * len(tile_starts(width, tile_w, overlap))


def _raw_window(tile: int, overlap: int) -> np.ndarray:
    """The linear window along one axis, (tile,) float64, > 0 everywhere."""
    i = np.arange(tile, dtype=np.float64)
    if overlap == 0:
        return np.ones(tile)
    return np.minimum(1.0, np.minimum((i + 0.5) / overlap, (tile - i - 0.5) / overlap))


@lru_cache(maxsize=256)
def axis_weights(length: int, tile: int, overlap: int, window: str = "linear") -> tuple[np.ndarray, ...]:
    """Per tile along one axis, its normalized blending weights over its valid pixels.

    Returns one float32 array per start in ``tile_starts(length, tile, overlap)``, of length
    ``min(tile, length - start)``; at every pixel of the axis the weights of the tiles covering it
    sum to 1 (within float32 rounding), and a pixel covered by one tile has weight exactly 1.
    """
    if window not in WINDOWS:
        raise FakeLocatorError(f"tile window must be one of {WINDOWS}, got {window!r}")
    starts = tile_starts(length, tile, overlap)
    raw = _raw_window(tile, overlap)
    total = np.zeros(length, np.float64)
    for s in starts:
        n = min(tile, length - s)
        total[s:s + n] += raw[:n]
    out = []
    for s in starts:
        n = min(tile, length - s)
        w = (raw[:n] / total[s:s + n]).astype(np.float32)
        w.flags.writeable = False
        out.append(w)
    return tuple(out)


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (H, W, ...) extended at the bottom and right by mirroring (numpy ``"symmetric"``,
    rule 2) to at least ``height`` × ``width``; the image itself when it is that large already."""
    ph, pw = max(0, height - image.shape[0]), max(0, width - image.shape[1])
    if not (ph or pw):
        return image
    return np.pad(image, ((0, ph), (0, pw)) + ((0, 0),) * (image.ndim - 2), mode="symmetric")


def extract_tiles(image: np.ndarray, grid: TileGrid, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) image → (len(grid), tile_h, tile_w, C) tiles of the same dtype, padded by mirroring."""
    if image.shape[:2] != (grid.height, grid.width):
        raise FakeLocatorError(f"image of shape {image.shape[:2]} does not match its tile grid {grid.height}x{grid.width}")
    c = image.shape[2:]
    if out is None:
        out = np.empty((len(grid), grid.tile_h, grid.tile_w) + c, image.dtype)
    image = pad_to(image, grid.tile_h, grid.tile_w)  # only an image smaller than a tile needs it
    k = 0
    for y in grid.ys:
        for x in grid.xs:
            out[k] = image[y:y + grid.tile_h, x:x + grid.tile_w]
            k += 1
    return out


def normalize_tiles(tiles: np.ndarray, mean, std, out: np.ndarray | None = None) -> np.ndarray:
    """(n, h, w, 3) uint8 tiles (already in the contract's colour order) → (n, 3, h, w) float32 network input."""
    mean = np.asarray(mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(std, np.float32) * 255.0)
    x = (tiles.astype(np.float32) - mean) * inv_std  # (n, h, w, 3)
    if out is None:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    out[...] = x.transpose(0, 3, 1, 2)
    return out


def stitch(maps: np.ndarray, grid: TileGrid, window: str = "linear", out: np.ndarray | None = None) -> np.ndarray:
    """(len(grid), tile_h, tile_w) tile maps → (height, width) float32 map, blended (rule 3).

    ``out``, when given, is a float32 (height, width) buffer that is overwritten.
    """
    if maps.shape[0] != len(grid) or maps.shape[1:3] != (grid.tile_h, grid.tile_w):
        raise FakeLocatorError(f"{maps.shape} tile maps do not match a grid of {len(grid)} tiles of {grid.tile_h}x{grid.tile_w}")
    wy = axis_weights(grid.height, grid.tile_h, grid.overlap, window)
    wx = axis_weights(grid.width, grid.tile_w, grid.overlap, window)
    if out is None:
        out = np.zeros((grid.height, grid.width), np.float32)
    else:
        out[...] = 0.0
    k = 0
    for y, ay in zip(grid.ys, wy):
        for x, ax in zip(grid.xs, wx):
            h, w = ay.shape[0], ax.shape[0]
            out[y:y + h, x:x + w] += maps[k, :h, :w] * ay[:, None] * ax[None, :]
            k += 1
    return out


def pool_scores(scores, rule: str) -> float:
    """The image's score from its tiles' scores (``POOLINGS``)."""
    s = np.sort(np.asarray(scores, np.float64).ravel())[::-1]
    if s.size == 0:
        raise FakeLocatorError("no tile scores to pool")
    if rule == "max":
        return float(s[0])
    if rule == "mean":
        return float(s.mean())
    if rule == "top2":
        return float(s[:2].mean())
    raise FakeLocatorError(f"tile pooling must be one of {POOLINGS}, got {rule!r}")
