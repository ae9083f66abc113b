"""``Locator``: the Python API of the runtime.

    from fakelocator.runtime import Locator

    with Locator.load("model.onnx") as locator:                 # or Locator.load() for the default model
        result = locator.locate("photo.jpg")                     # one input → one LocateResult
        results = locator.locate([bgr_array, png_bytes, "b.png"])
        for r in locator.locate_iter(paths, on_error="record"):  # streaming, tolerant
            ...
        video = locator.locate_video("clip.mp4", fps=2)
        for frame in video:
            ...
        verdict = video.summary.label

        faces = locator.locate_video("clip.mp4", fps=2, faces=True)  # analyse face crops (docs/faces.md)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Union

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.runtime.backends import load_backend
from fakelocator.runtime.backends.base import Backend, ModelInfo
from fakelocator.runtime.limits import check_threads
from fakelocator.runtime.decode import DEFAULT_MAX_PIXELS, load_image, to_color_image
from fakelocator.runtime.pipeline import Job, Runner, background, header_tile_check, prefetch
from fakelocator.runtime.preprocess import Preprocessor, select_preprocessor
from fakelocator.runtime.regions import RegionProposal, RegionProvider, clip_boxes
from fakelocator.runtime.results import FrameResult, LocateResult
from fakelocator.runtime.spec import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TILES, MIN_SIDE, spec_for
from fakelocator.runtime.video import RawFrame, Sampling, VideoReader, VideoResults, VideoSource

if TYPE_CHECKING:
    from fakelocator.runtime.faces import FaceOptions

ON_ERROR = ("raise", "record")

#: One image for ``locate``: a path, encoded bytes, or a uint8/uint16 array.
ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray]
ACCEPTED = (
    "a path, encoded image bytes, a uint8/uint16 image array of shape (H, W), (H, W, 3) or (H, W, 4), "
    "a 4-D array (N, H, W, C) of images, or a list of those"
)


def describe(value: object) -> str:
    """A short description of what was passed, for error messages."""
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-D {value.dtype} array of shape {value.shape}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _batch_of(images: object) -> tuple[bool, Iterable[ImageInput]]:
    """(whether ``images`` is one input, the inputs); InputError when it is neither one nor an iterable of them."""
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)):
        return True, [images]
    if isinstance(images, np.ndarray):
        if images.ndim in (2, 3):
            return True, [images]
        if images.ndim == 4:
            return False, images
        raise InputError("<array>", f"{describe(images)} is not an image or a batch of images; expected {ACCEPTED}")
    if isinstance(images, (Mapping, set, frozenset)) or not isinstance(images, Iterable):
        raise InputError("<input>", f"got {describe(images)}; expected {ACCEPTED}")
    return False, images


def default_model_path() -> Path:
    """Where the embedded default model lives: ``fakelocator/weights/default/model.onnx``."""
    import fakelocator

    return Path(fakelocator.__file__).resolve().parent / "weights" / "default" / "model.onnx"


def _default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


class Locator:
    """A loaded model plus the pipeline around it.

    Args:
        backend: a loaded ``Backend`` (see ``Locator.load`` to load one from a file).
        batch_size: network inputs per inference call (crops in ``fit``, tiles in ``native``).
        threshold: ``score >= threshold`` is labelled "fake"; None: the model's calibrated threshold
            (its metadata, ``fakelocator.threshold``; 0.5 for a model that states none).
        preprocessor: "auto" (the native library when built, else numpy), "numpy", "native", or a
            ``Preprocessor`` instance.
        workers: decoding threads (and as many upsampling threads); default min(8, CPU count).
        prefetch: inputs decoded ahead of inference; default max(2 batches, workers). Decoded
            images held in memory at once are about ``prefetch + 3 * batch_size``: lower it for
            very large images.
        max_pixels: larger images are refused from their header; None for no limit.
        regions: an optional region provider (see ``fakelocator.runtime.regions``), e.g. face crops.
        pipeline: "auto" (pre/post-processing on the GPU when the backend offers device I/O, the
            native library has CUDA and a GPU is visible; else on the host, with a log line why),
            "host", or "device" (an error when the GPU path is not possible). See
            ``fakelocator.runtime.device_pipeline``; ``self.pipeline`` says which one runs.
        analysis: "fit" (the image resized to the network's input, the map upsampled back) or
            "native" (tiles of the network's input size at the image's own scale, maps stitched,
            tile scores pooled; docs/runtime.md). None: what the model was made for (its
            contract; a model saved before the field existed is ``fit``).
        tile_overlap: ``native``: pixels neighbouring tiles share, in [0, half a tile); None: the model's.
        tile_pooling: ``native``: how tile scores become the image's score, "max", "mean" or
            "top2"; None: the model's.
        max_tiles: ``native``: inputs that take more tiles than this (over all their crops) get an
            error record instead of a map (never a silent downscale); None for no limit. Default
            ``DEFAULT_MAX_TILES`` (1024) tiles, about 7200 × 7200 pixels with the shipped model's 256²
            tiles (overlap 32).
        bbox_level: results' ``bbox`` is the box of the map at or above this level; None: the
            resolved threshold.
        min_side: images and frames with a side shorter than this get an error record ("too small
            to analyse": neither real nor fake) instead of a score; default ``MIN_SIDE`` (16, see
            docs/runtime.md); 1 analyses everything.

    ``batch_size``, ``threshold``, ``analysis``, ``tile_overlap``, ``tile_pooling``, ``max_tiles``
    and ``min_side`` are resolved with the model's own once (``fakelocator.runtime.spec``):
    ``self.spec`` is what every call runs.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threshold: float | None = None,
        preprocessor: str | Preprocessor = "auto",
        workers: int | None = None,
        prefetch: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        regions: RegionProvider | None = None,
        bbox_level: float | None = None,
        pipeline: str = "auto",
        analysis: str | None = None,
        tile_overlap: int | None = None,
        tile_pooling: str | None = None,
        max_tiles: int | None = DEFAULT_MAX_TILES,
        min_side: int = MIN_SIDE,
    ) -> None:
        spec = spec_for(backend, batch_size=batch_size, threshold=threshold, analysis=analysis,
                        tile_overlap=tile_overlap, tile_pooling=tile_pooling, max_tiles=max_tiles, min_side=min_side)
        self.backend = backend
        self.preprocessor = select_preprocessor(preprocessor) if isinstance(preprocessor, str) else preprocessor
        self.workers = _default_workers() if workers in (None, 0) else check_threads("workers", workers)
        self.prefetch = prefetch or max(2 * spec.batch_size, self.workers)
        self.max_pixels = max_pixels
        self.regions = regions
        self._closed = False
        self._default_faces: RegionProvider | None = None  # locate_video(faces=True)'s provider, built on first use
        # ---- GPU pipeline (device_pipeline.py): "auto" is decided here, once ----
        from fakelocator.runtime.device_pipeline import choose_pipeline

        #: The run specification every call runs (fakelocator.runtime.spec): contract, threshold,
        #: batch size, tile budget, pipeline, device.
        self.spec, self._device_path = choose_pipeline(backend, pipeline, spec)
        #: ``bbox``: the box of the map at or above this level (the pixels the model calls fake).
        self.bbox_level = self.spec.threshold if bbox_level is None else bbox_level

    # The resolved options, as read-only attributes (``spec`` is frozen: a locator is rebuilt, not re-tuned).

    @property
    def contract(self) -> Preprocessing:
        """The contract this locator runs: the model's, with the analysis and tile options asked for."""
        return self.spec.contract

    @property
    def threshold(self) -> float:
        """``score >= threshold`` is labelled fake: the one given, else the model's calibrated one."""
        return self.spec.threshold

    @property
    def batch_size(self) -> int:
        """Network inputs per inference call (after the backend's limits)."""
        return self.spec.batch_size

    @property
    def max_tiles(self) -> int | None:
        """The tile budget per input in ``native`` analysis (None: no limit)."""
        return self.spec.max_tiles

    @property
    def min_side(self) -> int:
        """Images and frames with a shorter side get the error record "too small to analyse"."""
        return self.spec.min_side

    @property
    def pipeline(self) -> str:
        """Where pre/post-processing runs: "host" or "device"."""
        return self.spec.pipeline

    @classmethod
    def load(
        cls,
        model: str | os.PathLike | None = None,
        backend: str = "auto",
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        threshold: float | None = None,
        *,
        preprocessor: str | Preprocessor = "auto",
        workers: int | None = None,
        prefetch: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        regions: RegionProvider | None = None,
        faces: "bool | FaceOptions | None" = None,
        pipeline: str = "auto",
        analysis: str | None = None,
        tile_overlap: int | None = None,
        tile_pooling: str | None = None,
        max_tiles: int | None = DEFAULT_MAX_TILES,
        min_side: int = MIN_SIDE,
        precision: str | None = None,
        **backend_options: "int | float | bool | str",
    ) -> "Locator":
        """Load a model and build a locator around it.

        Args:
            model: an exported ``.onnx``, a TensorRT ``.engine`` (with its sidecar JSON), or a
                ``.pt``/``.safetensors`` checkpoint (torch backend). None: the embedded default model.
            backend: "auto" (the fastest available for the file: tensorrt > onnxruntime > torch),
                "tensorrt", "onnxruntime" or "torch".
            device: "auto", "cpu", "cuda" or "cuda:N".
            threshold: None: the model's calibrated threshold (its metadata; 0.5 when it states none).
            regions: a region provider (``fakelocator.runtime.regions``) for every input.
            faces: ``True`` or a ``fakelocator.runtime.faces.FaceOptions``: detect faces in every
                image and frame and analyse face crops (the region provider for faces; docs/faces.md).
            pipeline: "auto", "host" or "device": where pre/post-processing runs (see the class).
            analysis, tile_overlap, tile_pooling, max_tiles: "fit" or "native" analysis and its
                options (see the class); None keeps what the model was made for.
            min_side: the shortest side analysed (see the class).
            precision: None (the file as given), "fp32", "int8" or "auto": run the model's fp32 ONNX
                or its ``.int8.onnx`` companion (``fakelocator.runtime.precision``; auto: int8 on a CPU
                with VNNI/AMX when the file exists).
            backend_options: passed to the backend's ``load`` (e.g. ``threads`` for onnxruntime).
        """
        if faces not in (None, False):
            if regions is not None:
                raise FakeLocatorError("give either regions or faces, not both")
            regions = _face_provider(faces, device)
        if model is None:
            model = default_model_path()
            if not model.is_file():
                raise FakeLocatorError(
                    f"the default model is not installed ({model} is missing); pass a model file "
                    "(an exported .onnx, an .engine or a checkpoint)"
                )
        if precision is not None:
            from fakelocator.runtime.precision import choose

            model = choose(model, precision, on_cpu=_runs_on_cpu(backend, device)).path
        loaded = load_backend(model, backend, device=device, batch_size=batch_size, **backend_options)
        try:
            return cls(
                loaded, batch_size=batch_size, threshold=threshold, preprocessor=preprocessor, workers=workers,
                prefetch=prefetch, max_pixels=max_pixels, regions=regions, pipeline=pipeline, analysis=analysis,
                tile_overlap=tile_overlap, tile_pooling=tile_pooling, max_tiles=max_tiles, min_side=min_side,
            )
        except BaseException:
            loaded.close()
            raise

    @property
    def info(self) -> ModelInfo:
        """The model's ``ModelInfo`` (path, format, preprocessing contract, config, provenance, precision)."""
        return self.backend.info

    def __repr__(self) -> str:
        return (
            f"Locator(model={self.info.path!r}, backend={self.backend.name!r}, device={self.backend.device!r}, "
            f"batch_size={self.batch_size}, preprocessor={self.preprocessor.name!r}, pipeline={self.pipeline!r}, "
            f"analysis={self.contract.analysis!r})"
        )

    # ---- images -------------------------------------------------------------------------------

    def locate(
        self,
        images: ImageInput | Iterable[ImageInput],
        color_order: str = "BGR",
        *,
        on_error: str = "raise",
        keep_images: bool = False,
        keep_outputs: bool = False,
        map_dtype: str = "float32",
    ) -> LocateResult | list[LocateResult]:
        """Locate manipulations in one input or a list of them.

        Args:
            images: a path, encoded bytes, a uint8/uint16 array ((H, W), (H, W, 3) or (H, W, 4)),
                or a list of those (a 4-D array is a list of images).
            color_order: "BGR" or "RGB": the channel order of arrays (BGRA/RGBA: alpha is dropped).
                Files and bytes are decoded by the runtime and need none.
            on_error: "raise" (InputError on the first bad input) or "record" (a result with ``error``).
            keep_images: attach each decoded image to its result (``result.image``), e.g. for overlays.
            keep_outputs: attach the network's outputs before upsampling (``result.outputs``: the
                network-resolution ``map`` and the ``features`` vector; in ``native`` analysis the
                ``tile_maps``, ``tile_scores`` and mean ``features``), e.g. for evaluation.
            map_dtype: "float32" (``result.map`` in [0, 1]) or "uint8": its 8-bit levels
                (``fakelocator.runtime.levels``, what an 8-bit PNG stores), stitched or upsampled
                straight to levels without a float32 full-resolution map (trt-locate's 8-bit writer).

        Returns:
            a ``LocateResult``, or a list of them in input order.
        """
        self._check_on_error(on_error)
        try:
            single, items = _batch_of(images)
        except InputError as e:
            if on_error == "raise":
                raise
            return LocateResult(e.source, error=e.reason)  # one input, and not a usable one
        results = list(self.locate_iter(
            items, color_order, on_error=on_error, keep_images=keep_images, keep_outputs=keep_outputs, map_dtype=map_dtype
        ))
        return results[0] if single else results

    def locate_iter(
        self,
        images: Iterable[ImageInput],
        color_order: str = "BGR",
        *,
        on_error: str = "raise",
        keep_images: bool = False,
        keep_outputs: bool = False,
        map_dtype: str = "float32",
    ) -> Iterator[LocateResult]:
        """Like ``locate`` on an iterable, yielding results in order as their batches finish.

        The iterable is consumed lazily (``prefetch`` ahead), so it can be a generator over a
        whole bucket of files. Something that is not an iterable of inputs (None, a number, a 1-D
        array) is an ``InputError`` naming it, whatever ``on_error`` says.
        """
        self._check_on_error(on_error)
        self._check_open()
        _, items = _batch_of(images)  # a bare path or image is one input, not an iterable of characters or rows
        # native analysis refuses an image over the tile budget from its header, before decoding it
        check = header_tile_check(self.contract, self.max_tiles) if self.regions is None else None

        def decode(numbered: tuple[int, ImageInput]) -> Job:
            index, item = numbered
            if isinstance(item, np.ndarray):
                source = f"<array {index}>"
            elif isinstance(item, (bytes, bytearray, memoryview)):
                source = f"<bytes {index}>"
            else:
                source = os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"<input {index}>"
            job = Job(index=index, source=source)
            t0 = time.perf_counter()
            try:
                job.image, job.color_order, _ = load_image(
                    item, color_order=color_order, max_pixels=self.max_pixels, source=source, check=check
                )
                job.height, job.width = job.image.shape[:2]
            except InputError as e:
                job.error = e.reason
            except MemoryError:
                job.error = "out of memory decoding it"
            except Exception as e:  # noqa: BLE001 - one broken input must not end the run
                job.error = f"cannot be decoded ({type(e).__name__}: {e})"
            job.timings["decode"] = (time.perf_counter() - t0) * 1000
            self._add_regions(job, index, self.regions)
            return job

        jobs = prefetch(decode, enumerate(items), workers=self.workers, depth=self.prefetch)
        return self._finish(jobs, on_error, keep_images, keep_outputs, map_dtype)

    # ---- videos -------------------------------------------------------------------------------

    def locate_video(
        self,
        video: VideoSource,
        *,
        every: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        on_error: str = "record",
        keep_images: bool = False,
        top_k: int = 5,
        verdict_by: str = "p95",
        known: dict[int, float | None] | None = None,
        known_empty: Iterable[int] = (),
        faces: "bool | FaceOptions | None" = None,
        map_dtype: str = "float32",
    ) -> VideoResults:
        """Open a video and return its per-frame results, iterable as frames are decoded, with a summary.

        Args:
            video: a path, the encoded bytes, or a binary file object (``read``, and ``seek`` for
                containers that need it, e.g. MP4 with its index at the end); bytes and file objects
                need PyAV (see ``fakelocator.runtime.video``). Frames' ``time_s`` are the
                container's presentation times.
            every, fps: sample every N-th frame, or F frames per second of video (default: every frame).
            max_frames: stop after this many sampled frames.
            on_error: for frames that fail to decode, and a video that ends early (truncated): "record"
                (default: a FrameResult with ``error``, and ``summary.error``) or "raise". A video that
                cannot be opened raises InputError right away.
            top_k: frames listed in ``summary.top_frames``.
            verdict_by: the statistic the summary's label is taken on: "p95", "max" or "mean".
            known: {frame: score, or None if it failed} already known (resume): skipped, but summarized.
            known_empty: frames already known to have had nothing to analyse (no face; resume).
            faces: ``True`` or a ``FaceOptions``: analyse the faces detected in each frame (crops
                with a margin, maps pasted back; frames without a face are ``empty_frames``, see
                docs/faces.md); ``False``: whole frames; None: as the locator was loaded.
            map_dtype: "float32" or "uint8" (the frames' 8-bit map levels; see ``locate``).
        """
        self._check_on_error(on_error)
        self._check_open()
        if faces is None:
            regions = self.regions
        elif faces is False:
            regions = None
        else:
            regions = self._faces_for_videos(faces)
        reader = VideoReader(video, Sampling(every, fps, max_frames), max_pixels=self.max_pixels)
        return VideoResults(
            self, reader, on_error=on_error, keep_images=keep_images, top_k=top_k, verdict_by=verdict_by, known=known,
            known_empty=known_empty, regions=regions, map_dtype=map_dtype,
        )

    def _faces_for_videos(self, faces: "bool | FaceOptions") -> RegionProvider:
        """The face provider of ``locate_video(faces=True)``, built once per locator (a detector loads a model)."""
        if faces is True:
            if self._default_faces is None:
                self._default_faces = _face_provider(True, self.backend.device)
            return self._default_faces
        return _face_provider(faces, self.backend.device)

    def _run_frames(
        self, source: str, frames: Iterator[RawFrame], *, on_error: str, keep_images: bool, regions: RegionProvider | None,
        map_dtype: str = "float32",
    ) -> Iterator[FrameResult]:
        def prepare(raw: RawFrame) -> Job:
            job = Job(index=raw.index, source=source, frame=raw.index, time_s=raw.time_s)
            job.timings["decode"] = raw.decode_ms
            if raw.image is None:
                job.error = raw.error or f"frame {raw.index} could not be decoded"
            else:
                try:
                    job.image = to_color_image(raw.image, "BGR", f"{source} frame {raw.index}")
                    job.height, job.width = job.image.shape[:2]
                except InputError as e:
                    job.error = e.reason
            self._add_regions(job, raw.index, regions)
            return job

        jobs = prefetch(prepare, background(frames, depth=self.prefetch), workers=self.workers, depth=self.prefetch)
        return self._finish(jobs, on_error, keep_images, map_dtype=map_dtype)

    # ---- shared -------------------------------------------------------------------------------

    def _add_regions(self, job: Job, index: int, provider: RegionProvider | None) -> None:
        if provider is None or job.error is not None:
            return
        t0 = time.perf_counter()
        try:
            boxes = provider(job.image, job.color_order, index)
            if isinstance(boxes, RegionProposal):
                job.faces = list(boxes.faces)
                boxes = boxes.boxes
            job.boxes = None if boxes is None else clip_boxes(boxes, job.width, job.height, job.source)
        except InputError as e:
            job.error = e.reason
        except Exception as e:  # noqa: BLE001 - a failing provider fails this input only
            job.error = f"region provider failed ({type(e).__name__}: {e})"
        job.timings["regions"] = (time.perf_counter() - t0) * 1000

    def _finish(
        self, jobs: Iterator[Job], on_error: str, keep_images: bool, keep_outputs: bool = False, map_dtype: str = "float32"
    ) -> Iterator[LocateResult]:
        options = dict(workers=self.workers, keep_images=keep_images, keep_outputs=keep_outputs, bbox_level=self.bbox_level,
                       map_dtype=map_dtype)
        if self._device_path is not None:
            runner = self._device_path.runner(self.backend, self.preprocessor, self.spec, **options)
        else:
            runner = Runner(self.backend, self.preprocessor, self.spec, **options)
        results = runner.run(jobs)
        try:
            for result in results:
                if result.error is not None and on_error == "raise":
                    raise InputError(result.source, result.error)
                yield result
        finally:
            results.close()
            close = getattr(jobs, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _check_on_error(on_error: str) -> None:
        if on_error not in ON_ERROR:
            raise FakeLocatorError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")

    def _check_open(self) -> None:
        if self._closed:
            raise FakeLocatorError("this Locator is closed (close() or its with-block ended); load another")

    def close(self) -> None:
        """Release the model and its buffers; the locator cannot be used afterwards. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._device_path is not None:
            self._device_path.close()
            self._device_path = None
        self.backend.close()

    def __enter__(self) -> "Locator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _face_provider(faces: "bool | FaceOptions", device: str) -> RegionProvider:
    """``faces=True`` (default options; RetinaFace, when configured, on the model's device) or ``FaceOptions``."""
    from fakelocator.runtime.faces import FaceOptions, FaceRegions

    if faces is True:
        faces = FaceOptions(device=device)
    if not isinstance(faces, FaceOptions):
        raise FakeLocatorError(f"faces must be True or a FaceOptions, got {faces!r}")
    return FaceRegions.from_options(faces)


def _runs_on_cpu(backend: str, device: str) -> bool:
    """Whether an ONNX model loaded with these options runs on the CPU (ONNX Runtime without CUDA)."""
    if device == "cpu":
        return True
    if device != "auto" or backend not in ("auto", "onnxruntime"):
        return False
    from fakelocator.runtime.backends import available

    if backend == "auto" and available("tensorrt")[0]:
        return False
    from fakelocator.runtime.backends.onnxruntime import has_cuda

    return available("onnxruntime")[0] and not has_cuda()
