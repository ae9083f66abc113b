"""Write a synthetic dataset in the shared on-disk format, in parallel and reproducibly.

Layout (see the helper brief): ``real/``, ``fake/`` (same relative path and size as its real),
``entire/``, ``manifest.csv`` (authoritative) and ``synth.json`` (the recipe and the photos used).
Item ``i`` is made from ``numpy.random.default_rng([seed, i])`` alone and every worker runs torch
and OpenCV single-threaded, so the files are byte-identical for any number of workers.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.synth.ceiling import ceiling
from fakelocator.training.synth.config import KINDS, SynthConfig
from fakelocator.training.synth.faces import detect_faces
from fakelocator.training.synth.photos import Photo, collect_photos
from fakelocator.training.synth.synthesize import load_photo, synthesize_one

#: manifest.csv columns: the four of the shared format, then how each image was made.
COLUMNS = (
    "image", "real", "kind", "property",
    "index", "photo", "width", "height", "crop", "flip", "jitter",
    "upsampler", "encoder", "depth", "gan_scale", "gan_size", "final_upsampler", "retention",
    "detail_restore", "texture_strength", "decoder_noise", "edit", "box", "face_source", "region_fraction",
    "region_difference", "attempts", "gt_mean", "ceiling_coss", "ceiling_psnr", "seed",
)
OUTPUTS = ("real", "fake", "entire", "manifest.csv", "synth.json")
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
ITEMS_PER_WORKER = 32  # with workers=None, at least this many items per started worker


@dataclass
class Summary:
    """What ``generate`` wrote."""

    out_dir: Path
    images: dict[str, int]  # kind → number of images in the manifest
    photos: list[Photo]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1

    @property
    def images_per_second(self) -> float:
        return sum(self.images.values()) / self.seconds if self.seconds > 0 else float("nan")


def item_kinds(n: int, seed: int, fractions: dict[str, float]) -> list[str]:
    """The kind of each item: a golden-ratio sequence, so that every prefix of a run has close to
    the requested fractions and the first ``n`` items of a longer run are the same."""
    total = sum(fractions.get(k, 0.0) for k in KINDS)
    edges = np.cumsum([fractions.get(k, 0.0) / total for k in KINDS])
    offset = float(np.random.default_rng([seed, 0xFFFFFFFF]).random())
    kinds = []
    for i in range(n):
        u = (offset + i * _GOLDEN) % 1.0
        kinds.append(KINDS[min(int(np.searchsorted(edges, u, side="right")), len(KINDS) - 1)])
    return kinds


@contextlib.contextmanager
def single_threaded():
    """Run torch and OpenCV on one thread (so results do not depend on thread count), then restore."""
    import cv2
    import torch

    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


_WORKER: dict = {}


def _init_worker(cfg: SynthConfig, photos: list[Photo], out_dir: str) -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER.update(cfg=cfg, photos=photos, out_dir=Path(out_dir), weights=_photo_weights(photos, cfg),
                   kinds=item_kinds(cfg.n, cfg.seed, cfg.kind_fractions))


def _photo_weights(photos: list[Photo], cfg: SynthConfig) -> np.ndarray:
    w = np.asarray([cfg.face_weight if p.faces else 1.0 for p in photos], np.float64)
    return w / w.sum()


def _detect(photo: Photo) -> Photo:
    if photo.faces_from:
        return photo
    return dataclasses.replace(photo, faces=detect_faces(load_photo(photo)), faces_from="detector")


def _write_png(path: Path, rgb: np.ndarray, level: int) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise FakeLocatorError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def make_item(index: int) -> list[dict[str, str]]:
    """Make, write and describe item ``index`` (in a worker set up by ``_init_worker``)."""
    cfg, photos, out = _WORKER["cfg"], _WORKER["photos"], _WORKER["out_dir"]
    rng = np.random.default_rng([cfg.seed, index])
    photo = photos[int(rng.choice(len(photos), p=_WORKER["weights"]))]
    sample = synthesize_one(photo, rng, cfg, kind=_WORKER["kinds"][index])
    name = f"{index:0{max(6, len(str(cfg.n - 1)))}d}.png"
    common = {"index": index, "photo": photo.name, "seed": f"{cfg.seed}:{index}", **sample.info}
    rows = []
    if sample.kind in ("partial", "real"):
        _write_png(out / "real" / name, sample.real, cfg.png_compression)
        rows.append({**common, "image": f"real/{name}", "real": "", "kind": "real", "property": ""})
    if sample.kind == "partial":
        _write_png(out / "fake" / name, sample.fake, cfg.png_compression)
        gt = partial_manipulation_map(sample.real, sample.fake)
        c, p = ceiling(gt, (cfg.model_input, cfg.model_input))
        rows.append({**common, "image": f"fake/{name}", "real": f"real/{name}", "kind": "partial",
                     "property": sample.property, "gt_mean": float(gt.mean()), "ceiling_coss": c, "ceiling_psnr": p})
    if sample.kind == "entire":
        _write_png(out / "entire" / name, sample.fake, cfg.png_compression)
        rows.append({**common, "image": f"entire/{name}", "real": "", "kind": "entire", "property": "entire",
                     "gt_mean": 1.0})
    return [{c: _fmt(r.get(c, "")) for c in COLUMNS} for r in rows]


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not overwrite:
        raise FakeLocatorError(f"{out_dir} already holds a dataset ({', '.join(existing)}); pass --overwrite to replace it")
    for name in existing:
        target = out_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    for sub in ("real", "fake", "entire"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)


def prepare_photos(cfg: SynthConfig) -> tuple[list[Photo], list[str]]:
    """The run's photos, with face boxes looked for in those that have none on record."""
    photos, notes = collect_photos(cfg.photos, bundled=cfg.bundled_photos, min_side=cfg.min_source_side)
    if cfg.detect_faces:
        photos = [_detect(p) for p in photos]
    return photos, notes


def generate(out_dir: str | Path, config: SynthConfig | None = None, *, workers: int | None = None,
             overwrite: bool = False, progress: bool = False) -> Summary:
    """Synthesize ``config.n`` items into ``out_dir`` and write ``manifest.csv`` and ``synth.json``.

    Args:
        out_dir: the dataset root; created if missing.
        config: the recipe (``SynthConfig()`` when None).
        workers: processes to use (default: the CPU count, but no more than one per 32 items);
            1 runs in this process. The output
            does not depend on it. Workers are started with the ``spawn`` method (safe with torch
            and OpenCV thread pools), so a script calling this needs ``if __name__ == "__main__":``.
        overwrite: replace a dataset already in ``out_dir`` (only its ``real/``, ``fake/``,
            ``entire/``, ``manifest.csv`` and ``synth.json``).
        progress: show a progress bar on stderr.
    """
    cfg = config or SynthConfig()
    out = Path(out_dir)
    if workers is None:  # starting a worker costs seconds (torch import): small runs use fewer
        workers = min(os.cpu_count() or 1, max(1, cfg.n // ITEMS_PER_WORKER))
    workers = max(1, min(workers, cfg.n))
    start = time.perf_counter()
    rows: list[dict[str, str]] = []
    if workers == 1:
        with single_threaded():
            photos, notes = prepare_photos(cfg)
            _prepare_out(out, overwrite)
            _init_worker(cfg, photos, str(out))
            try:
                rows = [r for i in _progress(range(cfg.n), cfg.n, progress) for r in make_item(i)]
            finally:
                _WORKER.clear()
    else:
        ctx = multiprocessing.get_context("spawn")
        photos, notes = collect_photos(cfg.photos, bundled=cfg.bundled_photos, min_side=cfg.min_source_side)
        if cfg.detect_faces and any(not p.faces_from for p in photos):
            with ctx.Pool(workers) as pool:
                photos = list(pool.map(_detect, photos))
        _prepare_out(out, overwrite)
        chunk = max(1, min(8, cfg.n // (4 * workers)))
        with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, photos, str(out))) as pool:
            results = pool.imap(make_item, range(cfg.n), chunksize=chunk)
            rows = [r for item in _progress(results, cfg.n, progress) for r in item]
    _write_manifest(out / "manifest.csv", rows)
    counts = {k: sum(r["kind"] == k for r in rows) for k in ("real", "partial", "entire")}
    record = {
        "fakelocator_version": __version__,
        "config": cfg.to_dict(),
        "images": counts,
        "photos": [p.to_dict() for p in photos],
        "photos_skipped": notes,
        "manifest_columns": list(COLUMNS),
    }
    (out / "synth.json").write_text(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return Summary(out, counts, photos, notes, time.perf_counter() - start, workers)


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, unit="item", desc="synth")
