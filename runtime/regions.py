"""The hook through which face crops (or any regions of interest) plug into the pipeline.

A region provider is a callable ``provider(image, color_order, index) -> boxes or None``:

- ``image``: the decoded uint8 (H, W, 3) image or frame, channels in ``color_order``;
- ``index``: the input's position (images) or the frame index (videos);
- it returns ``None`` to analyse the whole image, or a sequence of (x0, y0, x1, y1) boxes (x1, y1
  exclusive). Each box is cropped, run through the network on its own, and its map is pasted back
  into a full-size map (zero elsewhere, the maximum where boxes overlap); the image's score is the
  highest region score. An empty sequence means "nothing to analyse": an all-zero map, score 0,
  label "real" (a video's summary leaves such frames out of its statistics and counts them as
  ``empty_frames``);
- or it returns a ``RegionProposal``: the same boxes (or None) plus the faces it detected, which
  the result reports as ``faces`` (``fakelocator.runtime.faces.FaceRegions`` does this).

It runs in the decoding worker threads, so a slow detector is parallelized with decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from fakelocator.errors import InputError
from fakelocator.runtime.results import Box, Face


@dataclass(frozen=True)
class RegionProposal:
    """Boxes to analyse (None: the whole image) and the faces they were made for (in box order)."""

    boxes: Sequence[Box] | None
    faces: Sequence[Face] = field(default_factory=tuple)


class RegionProvider(Protocol):
    def __call__(self, image: np.ndarray, color_order: str, index: int) -> Sequence[Box] | RegionProposal | None: ...


def clip_boxes(boxes: Sequence[Sequence[float]], width: int, height: int, source: str) -> list[Box]:
    """Boxes rounded to integers and clipped to the image; empty boxes after clipping are dropped."""
    out = []
    for box in boxes:
        if len(box) != 4:
            raise InputError(source, f"region provider returned {box!r}; boxes are (x0, y0, x1, y1)")
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
        y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1, y1))
    return out
