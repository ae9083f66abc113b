"""One run specification, resolved once: what a run does, after the user's overrides of the model's own.

A model states how it is to be run (its metadata: the preprocessing contract, ``fit`` or ``native``
with its tile options, and its calibrated decision threshold; ``fakelocator.metadata``). A user may
override some of it (``--analysis``, ``--tile-overlap``, ``--tile-pooling``, ``--threshold``) and
adds what is the run's own (batch size, tile budget, where pre/post-processing runs).
:func:`resolve_spec` merges the two in one place, the way timm's ``resolve_data_config`` merges a
user's arguments over a model's defaults, and checks the result; the frozen :class:`RunSpec` it
returns is handed whole to what runs (``Runner``, ``DeviceRunner``, the Triton pipeline model),
which read it and never re-derive an option from the backend.

Every entry point goes through it: ``Locator`` (and so ``trt-locate``, Triton's pipeline model,
``fakelocator eval`` and the benchmarks, which all build a ``Locator``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import DEFAULT_THRESHOLD
from fakelocator.runtime.limits import check_batch

#: Default tile budget per input in ``native`` analysis: 1024 tiles of 256² (the shipped model's)
#: with an overlap of 32 cover about 7200 × 7200 pixels (a 24-megapixel 6000 × 4000 photo takes
#: 486); its tile maps (1024 × 256² float32, 256 MB) are the largest buffer one input holds.
DEFAULT_MAX_TILES = 1024
#: Network inputs per inference call when the user names none.
DEFAULT_BATCH_SIZE = 8
#: Images and frames with a side shorter than this are not analysed (an error record, "too small
#: to analyse", neither real nor fake): a few pixels hold none of the traces the model reads
#: (upsampling periods, blending seams). Measured with the default model: docs/runtime.md.
MIN_SIDE = 16


@dataclass(frozen=True)
class RunSpec:
    """What one run does, resolved (see the module docstring).

    Attributes:
        contract: the preprocessing contract the run follows: the model's, with the analysis and
            tile options the user asked for.
        threshold: ``score >= threshold`` is labelled "fake": the user's, else the model's
            calibrated one (its metadata; ``DEFAULT_THRESHOLD`` for a model that states none).
        batch_size: network inputs per inference call (crops in ``fit``, tiles in ``native``),
            after the backend's limits (a static batch axis, the largest profile).
        max_tiles: ``native``: inputs over this many tiles get an error record; None: no limit.
        min_side: images and frames with a shorter side get an error record (``MIN_SIDE``; 1: none).
        pipeline: "host" or "device": where pre/post-processing runs (a user's "auto" is decided by
            ``device_pipeline.choose_pipeline``, which opens the device path when it can).
        device: the backend's device ("cpu", "cuda:N").
        fixed_batch: the backend takes exactly this many inputs per call (partial batches are
            padded), or None.
    """

    contract: Preprocessing
    threshold: float = DEFAULT_THRESHOLD
    batch_size: int = DEFAULT_BATCH_SIZE
    max_tiles: int | None = DEFAULT_MAX_TILES
    min_side: int = MIN_SIDE
    pipeline: str = "host"
    device: str = "cpu"
    fixed_batch: int | None = None

    @property
    def native(self) -> bool:
        return self.contract.native

    @property
    def analysis(self) -> str:
        return self.contract.analysis

    def on(self, pipeline: str, *, max_batch: int | None = None) -> "RunSpec":
        """This spec on ``pipeline`` ("host" or "device"), its batch no larger than ``max_batch``."""
        if pipeline not in ("host", "device"):
            raise FakeLocatorError(f"a resolved pipeline is 'host' or 'device', got {pipeline!r}")
        batch = self.batch_size if max_batch is None else min(self.batch_size, max_batch)
        return replace(self, pipeline=pipeline, batch_size=batch)

    def to_dict(self) -> dict:
        """For records and logs: the resolved options, the contract as a dict."""
        return {"analysis": self.contract.analysis, "tile_overlap": self.contract.tile_overlap,
                "tile_pooling": self.contract.tile_pooling, "threshold": self.threshold,
                "batch_size": self.batch_size, "max_tiles": self.max_tiles, "min_side": self.min_side,
                "pipeline": self.pipeline,
                "device": self.device}


def resolve_spec(
    info,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threshold: float | None = None,
    analysis: str | None = None,
    tile_overlap: int | None = None,
    tile_pooling: str | None = None,
    max_tiles: int | None = DEFAULT_MAX_TILES,
    min_side: int = MIN_SIDE,
    device: str = "cpu",
    max_batch: int | None = None,
    fixed_batch: int | None = None,
) -> RunSpec:
    """The run specification for a model (``info``: a ``ModelInfo``, or anything with its
    ``preprocessing`` and ``threshold``) and what the user asked for; None keeps the model's.

    ``max_batch``/``fixed_batch``: the backend's batch limits (``Backend.max_batch``,
    ``Backend.fixed_batch``). The spec is on the host pipeline; ``device_pipeline.choose_pipeline``
    moves it to the device when it opens the device path. Bad values raise FakeLocatorError
    naming the option.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FakeLocatorError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if max_tiles is not None and (isinstance(max_tiles, bool) or not isinstance(max_tiles, int) or max_tiles < 1):
        raise FakeLocatorError(f"max_tiles must be an integer >= 1 or None, got {max_tiles!r}")
    if isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 1:
        raise FakeLocatorError(f"min_side must be an integer >= 1, got {min_side!r}")
    if threshold is None:
        threshold = getattr(info, "threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise FakeLocatorError(f"threshold must be a number in [0, 1], got {threshold!r}")
    contract = info.preprocessing.with_analysis(analysis, tile_overlap=tile_overlap, tile_pooling=tile_pooling)
    check_batch(batch_size, contract.size)  # at most MAX_BATCH, its input within the machine's memory
    batch = fixed_batch or (min(batch_size, max_batch) if max_batch else batch_size)
    return RunSpec(contract=contract, threshold=float(threshold), batch_size=batch, max_tiles=max_tiles,
                   min_side=min_side, device=str(device), fixed_batch=fixed_batch)


def spec_for(backend, **request) -> RunSpec:
    """:func:`resolve_spec` for a loaded ``Backend``: its model info, device and batch limits."""
    return resolve_spec(backend.info, device=getattr(backend, "device", "cpu"), max_batch=backend.max_batch,
                        fixed_batch=getattr(backend, "fixed_batch", None), **request)
