"""trt-locate: fakeness maps at full resolution for images, folders and videos.

Writes, under --out DIR: maps/<input path without suffix>.png (gray, the input's width and height,
map x 255, or x 65535 with --map-depth 16); maps/<video>/<frame:06d>.png for sampled video frames;
overlays/... .jpg with --overlay; and results.jsonl, one JSON object per image, sampled frame and
video (path, frame, map, overlay, score, label, width, height, bbox, error, timings_ms; videos add a
summary). Inputs are files, folders (recursive), globs, videos, or list files (.txt/.lst, or - for
stdin). A bad input yields a record with its error and the run goes on.

Analysis (docs/runtime.md#two-analyses-fit-and-native): a model runs as it was made for, fit (the
image resized to the network's input, the map upsampled back) or native (tiles of the network's
input size at the image's own scale, tile maps blended into the full-resolution map, tile scores
pooled); --analysis chooses. Records add `tiles`: how many network inputs the input took.

With --faces, faces are detected in every image and frame, each face is analysed on a crop with a
margin, and the maps are pasted back at the input's full size; records add `faces` (box, detector
score) and `regions` (each face's crop and its score). See docs/faces.md.

Exit status: 0 every input succeeded, 1 some inputs failed, 2 usage or model error, 141 stdout closed
by its reader (e.g. `| head`; the run stops, rerun with --resume to finish it), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.flags import non_negative_int, positive_int
from fakelocator.runtime.spec import DEFAULT_MAX_TILES

PROG = "trt-locate"


def _max_pixels(text: str) -> int | None:
    t = text.strip().lower()
    if t in ("0", "none", "off"):
        return None
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel count like 64M or 1000000, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 pixel, got {text!r}")
    return int(value)


def _thread_count(text: str, *, allow_zero: bool) -> int:
    from fakelocator.runtime.limits import max_threads

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    low, high = (0 if allow_zero else 1), max_threads()
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high} (4 per usable CPU, at least 16), got {value}")
    return value


def _threads(text: str) -> int:
    return _thread_count(text, allow_zero=True)


def _workers(text: str) -> int:
    return _thread_count(text, allow_zero=False)


def _max_tiles(text: str) -> int | None:
    value = non_negative_int(text)
    return value or None


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _fps(text: str) -> float:
    from fakelocator.runtime.video import MAX_FPS

    value = _positive_float(text)
    if value > MAX_FPS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_FPS:g} (any rate over a video's own takes every frame), got {text!r}")
    return value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image, video, folder, glob, list file, or - (list on stdin)")
    p.add_argument("--out", "-o", default="runs/locate", metavar="DIR", help="output folder (default: runs/locate)")
    p.add_argument("--version", action="version", version=f"{PROG} (fakelocator) {__version__}")

    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", metavar="PATH", help="an .onnx, .engine or checkpoint (default: the embedded model)")
    g.add_argument("--precision", choices=("auto", "fp32", "int8"),
                   help="run the model's fp32 .onnx or its .int8.onnx companion; auto: int8 on a CPU with VNNI/AMX "
                        "when the file exists (default: the file given; the embedded model's fp32)")
    g.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime", "torch"),
                   help="inference backend; auto takes the fastest available for the model (default: auto)")
    g.add_argument("--device", default="auto", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--batch", type=positive_int, default=8, metavar="N",
                   help="network inputs per inference batch: images in fit analysis, tiles in native (default: 8)")
    g.add_argument("--threshold", type=_unit_float, default=None, metavar="T",
                   help="score at or above which the label is fake (default: the model's calibrated threshold, "
                        "from its metadata; 0.5 for a model that states none)")
    g.add_argument("--threads", type=_threads, default=0, metavar="N",
                   help="CPU inference threads, onnxruntime and torch backends (default: 0 = the backend's default)")
    g.add_argument("--pipeline", default="auto", choices=("auto", "host", "device"),
                   help="where pre/post-processing runs: device keeps each batch on the GPU between one upload and "
                        "one download (needs a GPU backend with device I/O and the native library built with CUDA); "
                        "auto takes it when possible (default: auto)")

    g = p.add_argument_group("analysis (docs/runtime.md)")
    g.add_argument("--analysis", choices=("native", "fit"),
                   help="native: the network sees the image's own pixels, in overlapping tiles of its input size "
                        "(keeps the upsampling traces the model looks for; costs about one inference per tile); "
                        "fit: the whole image resized to the network's input, one inference per image, fine detail "
                        "of large images is lost (default: what the model was made for; models without the field: fit)")
    g.add_argument("--tile-overlap", type=non_negative_int, metavar="N",
                   help="native: pixels neighbouring tiles share, blended by a linear window (default: the model's, 32)")
    g.add_argument("--tile-pooling", choices=("max", "mean", "top2"),
                   help="native: how tile scores become the image's score: the most suspicious tile, their mean, "
                        "or the mean of the two highest (default: the model's; the shipped model's is mean)")
    g.add_argument("--max-tiles", type=_max_tiles, default=DEFAULT_MAX_TILES, metavar="N",
                   help="native: refuse an input that takes more tiles than N, with an error record, instead of "
                        f"downscaling it (default: {DEFAULT_MAX_TILES}, about 7200x7200 pixels with the shipped "
                        "model's 256-pixel tiles; 0 = no limit)")

    g = p.add_argument_group("inputs")
    g.add_argument("--max-pixels", type=_max_pixels, default="64M", metavar="N",
                   help="refuse images and frames larger than this, from their header (default: 64M; 0 = no limit)")
    g.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="decoding, upsampling and writing threads each (default: min(8, CPUs))")
    video = g.add_mutually_exclusive_group()
    video.add_argument("--every", type=positive_int, metavar="N", help="videos: analyse every N-th frame")
    video.add_argument("--fps", type=_fps, metavar="F", help="videos: analyse F frames per second")
    g.add_argument("--max-frames", type=positive_int, metavar="N", help="videos: at most N sampled frames each")

    g = p.add_argument_group("faces (docs/faces.md)")
    g.add_argument("--faces", action="store_true",
                   help="detect faces and analyse each face's crop instead of the whole image or frame")
    g.add_argument("--face-detector", choices=("blazeface", "blazeface-short", "lbp", "retinaface"),
                   help="blazeface: MediaPipe's full-range BlazeFace, shipped as ONNX (default); blazeface-short: its "
                   "close-up model; lbp: scikit-image's frontal-face cascade (fallback); retinaface: needs --face-weights")
    g.add_argument("--face-weights", metavar="PATH",
                   help="facexlib RetinaFace weights (detection_Resnet50_Final.pth or detection_mobilenet0.25_Final.pth; "
                   "needs torch and facexlib); default: BlazeFace, shipped in the package")
    g.add_argument("--face-margin", type=float, metavar="F",
                   help="grow each face box by F times its side on every side before cropping (default: 0.3)")
    g.add_argument("--face-min-size", type=float, metavar="F",
                   help="smallest face searched, as a fraction of the shorter image side (default: 0.1)")
    g.add_argument("--face-threshold", type=float, metavar="S",
                   help="lowest detector score kept (default: 0.5 for BlazeFace and the LBP cascade, 0.8 for RetinaFace)")
    g.add_argument("--faces-fallback", choices=("none", "frame"),
                   help="without a face: frame analyses the whole image (default; the record says analysed: image), "
                   "none analyses nothing (score 0, label real, counted as an empty frame)")

    g = p.add_argument_group("outputs")
    g.add_argument("--map-depth", type=int, choices=(8, 16), default=8, help="bits per map pixel (default: 8)")
    g.add_argument("--overlay", action="store_true", help="also write heat-map overlays under DIR/overlays")
    g.add_argument("--overlay-alpha", type=float, default=0.6, metavar="A",
                   help="heat map's opacity where the map is >= 0.6; it fades to transparent at 0.1 (default: 0.6)")
    resume = g.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="skip inputs already recorded in DIR/results.jsonl")
    resume.add_argument("--overwrite", action="store_true", help="start DIR/results.jsonl over")
    g.add_argument("--json", action="store_true", help="also print each record on stdout as a JSON line")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no per-input error lines")
    return p


def _printable(text: str) -> str:
    """One terminal line: control characters (a file name can hold newlines or escapes) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Progress:
    """A tqdm bar on stderr when it is a terminal; per-input error lines otherwise."""

    def __init__(self, total: int, enabled: bool, quiet: bool):
        self.quiet = quiet
        self.bar = None
        if enabled and not quiet and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, file=sys.stderr, unit="input", dynamic_ncols=True, leave=False)

    def error(self, path: str, reason: str) -> None:
        if self.quiet:
            return
        line = _printable(f"{PROG}: {path}: {reason}")
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fakelocator.runtime.stderr import native_stderr_silenced

    try:
        with native_stderr_silenced():
            return run_cli(args)
    except FakeLocatorError as e:
        print(_printable(f"{PROG}: error: {e}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except MemoryError:
        # one input's allocation failure is its own record; this is one that no input owns (a batch)
        print(f"{PROG}: error: out of memory; the records this run completed are kept: rerun with a smaller "
              "--batch (or fewer --workers) and --resume", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # stdout's reader went away (`trt-locate ... --json | head`): stop quietly, as Unix tools do, with the
        # status a shell gives a process SIGPIPE ended; the records written so far stay in results.jsonl.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain again
        except (OSError, ValueError):
            pass
        return 128 + 13


FACE_OPTIONS = {"face_detector": "detector", "face_weights": "weights", "face_margin": "margin", "face_min_size": "min_size",
                "face_threshold": "threshold", "faces_fallback": "fallback"}


def face_options(args: argparse.Namespace):
    """``FaceOptions`` from --faces and the --face-* options; None without --faces."""
    given = {field: getattr(args, dest) for dest, field in FACE_OPTIONS.items() if getattr(args, dest) is not None}
    if not args.faces:
        if given:
            flags = ", ".join("--" + dest.replace("_", "-") for dest in FACE_OPTIONS if getattr(args, dest) is not None)
            raise FakeLocatorError(f"{flags} only apply with --faces")
        return None
    from fakelocator.runtime.faces import FaceOptions

    return FaceOptions(device=args.device, **given)


def run_cli(args: argparse.Namespace) -> int:
    import cv2

    from fakelocator.runtime.outputs import OutputLock

    # Decode failures are reported per input; OpenCV's own log lines would only repeat them as noise.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise FakeLocatorError(f"--overlay-alpha must be in [0, 1], got {args.overlay_alpha}")
    if not args.out.strip():
        raise FakeLocatorError("--out must name a folder, got an empty name (use --out . for the current folder)")
    out = Path(args.out)
    if out.is_symlink() and not out.exists():
        try:
            target = os.readlink(out)
        except OSError:
            target = "?"
        raise FakeLocatorError(f"--out {out}: a symbolic link to {target}, which does not exist or loops; "
                               "remove the link or point it at a folder")
    if out.exists() and not out.is_dir():
        raise FakeLocatorError(f"--out {out}: exists and is not a folder")
    faces = face_options(args)  # usage errors before --out is created
    # No inputs, or a model that does not load, leave no --out behind: both come before the lock.
    from fakelocator.runtime.inputs import expand
    from fakelocator.runtime.locator import Locator

    inputs = expand(args.inputs, exclude=out)
    if not inputs:
        raise FakeLocatorError("no inputs (an empty list?)")
    backend_options = {"threads": args.threads} if args.threads else {}
    locator = Locator.load(
        args.model, backend=args.backend, device=args.device, batch_size=args.batch, threshold=args.threshold,
        workers=args.workers, max_pixels=args.max_pixels, faces=faces, pipeline=args.pipeline,
        analysis=args.analysis, tile_overlap=args.tile_overlap, tile_pooling=args.tile_pooling, max_tiles=args.max_tiles,
        precision=args.precision, **backend_options,
    )
    if args.precision is not None:
        print(f"{PROG}: --precision {args.precision}: {locator.info.path} ({locator.info.precision})", file=sys.stderr)
    try:
        lock = OutputLock(out)  # this run owns --out until it ends (another run on it stops here)
    except BaseException:
        locator.close()
        raise
    try:
        return _run_locked(args, out, faces, inputs, locator)
    finally:
        lock.release()


def _run_locked(args: argparse.Namespace, out: Path, faces, inputs, locator) -> int:
    from fakelocator.runtime.inputs import assign_keys
    from fakelocator.runtime.outputs import Journal, Layout, OutputError
    from fakelocator.runtime.run import RunOptions, run

    layout = Layout(out)
    try:
        journal = Journal(layout.results, resume=args.resume, overwrite=args.overwrite)
    except BaseException:
        locator.close()
        raise
    if journal.recorded.keys:  # an earlier run's maps keep their names, and no other input takes them
        inputs = assign_keys(inputs, os.getcwd(), taken=journal.recorded.keys)
    if journal.bad_lines:
        print(_printable(f"{PROG}: warning: {journal.describe_bad_lines()}"), file=sys.stderr)
    if args.resume:
        try:
            layout.remove_temporaries()
        except OSError as e:
            journal.close()
            locator.close()
            raise OutputError(f"cannot clean up {out}: {e.strerror or e}") from None
    options = RunOptions(
        every=args.every, fps=args.fps, max_frames=args.max_frames, map_depth=args.map_depth,
        overlay=args.overlay, overlay_alpha=args.overlay_alpha, writers=locator.workers,
    )
    progress = _Progress(len(inputs), enabled=True, quiet=args.quiet)

    def on_record(record: dict) -> None:
        if record["error"] is not None:
            where = record["path"] if record["frame"] is None else f"{record['path']} frame {record['frame']}"
            progress.error(where, record["error"])
        if args.json:
            print(json.dumps(record, separators=(",", ":")), flush=True)

    try:
        with locator:
            stats = run(locator, inputs, layout, journal, options, on_record=on_record,
                        on_input_done=lambda item, ok: progress.advance())
    except OutputError as e:
        raise OutputError(
            f"{e}; the {journal.records} record(s) this run completed are kept in {layout.results}: "
            "rerun with --resume once it can be written"
        ) from None
    finally:
        progress.close()
        journal.close()

    rate = stats.processed / stats.seconds if stats.seconds > 0 else 0.0
    resumed = f", {stats.skipped} already done" if stats.skipped else ""
    faceless = ""
    if faces is not None and stats.faceless:
        what = "the whole image analysed" if faces.fallback == "frame" else "not analysed: score 0, real"
        faceless = f", {stats.faceless} with no face found ({what})"
    print(
        f"{PROG}: {_count(stats.inputs, 'input')} ({_count(stats.images, 'image')}, {_count(stats.videos, 'video')}, "
        f"{_count(stats.frames, 'frame')}): "
        f"{stats.ok} ok, {stats.failed} failed, {stats.fake} fake{resumed}{faceless}; "
        f"{stats.processed} analysed in {stats.seconds:.1f} s ({rate:.1f}/s, {locator.backend.name} on {locator.backend.device}, "
        f"{locator.contract.analysis} analysis, {locator.pipeline} pre/post-processing{_numpy_fallback(locator)})",
        file=sys.stderr,
    )
    wrote_maps = (layout.root / "maps").is_dir()  # by this run or, resumed, an earlier one
    print(f"{PROG}: " + (f"maps in {out / 'maps'}, " if wrote_maps else "no maps written; ") + f"records in {layout.results}",
          file=sys.stderr)
    return 1 if stats.failed else 0


def _numpy_fallback(locator) -> str:
    """Said once, in the summary: the host pre/post-processing runs in numpy because the native
    library (``make native``) was not found, which costs speed, not results."""
    if locator.pipeline != "host" or getattr(locator.preprocessor, "name", "") != "numpy":
        return ""
    from fakelocator.runtime import native

    native.load()
    reason = native._unavailable or "not built"
    return f" in numpy: the native library was not found ({reason}; `make native`, docs/native.md)"


if __name__ == "__main__":
    sys.exit(main())
