"""Evaluate models × datasets and write the report: what ``fakelocator eval`` runs.

    from fakelocator.evaluation.suite import DatasetSpec, SuiteConfig, run_suite
    from fakelocator.evaluation.runner import EvalSettings

    report = run_suite(SuiteConfig(
        models=("runs/a/model.onnx", "runs/b/model.onnx"),
        datasets=(DatasetSpec.from_root("data/stgan_bald"), DatasetSpec.from_root("data/attgan_bald")),
        out="runs/eval",
        settings=EvalSettings.with_default_levels(["jpeg"], cluster=True),
    ))

Every model is loaded once through the runtime (``Locator.load``: checkpoint, ONNX or engine on any
backend) and evaluated on every dataset; all datasets are read and checked before the first model
loads, so a bad path fails at once.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation import clustering, report as report_io, robustness, tables
from fakelocator.evaluation.runner import EvalSettings, Evaluation, evaluate, evaluation_count
from fakelocator.runtime.spec import DEFAULT_MAX_TILES
from fakelocator.training.samples import Sample, collect_samples

REPORT = "report.json"


@dataclass(frozen=True)
class DatasetSpec:
    """One evaluated dataset: dataset roots (docs/data.md) plus folders of real-only and entire images."""

    name: str
    roots: tuple[str, ...] = ()
    real_dirs: tuple[str, ...] = ()
    entire_dirs: tuple[str, ...] = ()

    @classmethod
    def from_root(cls, root, *, real_dirs=(), entire_dirs=(), name: str | None = None) -> "DatasetSpec":
        return cls(name or Path(root).name or str(root), (str(root),), tuple(map(str, real_dirs)), tuple(map(str, entire_dirs)))

    @property
    def sources(self) -> list[str]:
        return [*self.roots, *(f"real:{d}" for d in self.real_dirs), *(f"entire:{d}" for d in self.entire_dirs)]

    def load(self, *, skip_invalid: bool = False, limit: int | None = None, seed: int = 0) -> list[Sample]:
        samples = collect_samples(self.roots, real_dirs=self.real_dirs, entire_dirs=self.entire_dirs, skip_invalid=skip_invalid)
        if limit is not None and limit < len(samples):
            keep = np.sort(np.random.default_rng([seed, 0x11]).choice(len(samples), limit, replace=False))
            samples = [samples[i] for i in keep]
        return samples


def dataset_specs(data=(), real_dirs=(), entire_dirs=()) -> list[DatasetSpec]:
    """One dataset per ``data`` root, each with every real/entire folder added; without roots, the
    folders form one dataset."""
    if data:
        specs = [DatasetSpec.from_root(root, real_dirs=real_dirs, entire_dirs=entire_dirs) for root in data]
    elif real_dirs or entire_dirs:
        name = "+".join(Path(d).name for d in (*real_dirs, *entire_dirs))
        specs = [DatasetSpec(name, (), tuple(map(str, real_dirs)), tuple(map(str, entire_dirs)))]
    else:
        raise FakeLocatorError("nothing to evaluate on: give --data ROOT (or --real-dir / --entire-dir folders)")
    names = unique_names([s.name for s in specs], [s.roots[0] if s.roots else s.name for s in specs])
    return [DatasetSpec(n, s.roots, s.real_dirs, s.entire_dirs) for n, s in zip(names, specs)]


@dataclass(frozen=True)
class SuiteConfig:
    """Args:
        models: model files (checkpoint, .onnx, .engine); None is the embedded default model.
        datasets: what to evaluate each model on.
        out: the output folder.
        settings: the scoring settings (``EvalSettings``).
        backend, device, batch_size, threads, workers: passed to ``Locator.load``.
        analysis, tile_overlap, tile_pooling, max_tiles: passed to ``Locator.load`` (None: what
            each model was made for; see docs/runtime.md).
        skip_invalid: leave out invalid samples (with a warning each) instead of failing.
        limit: evaluate a seeded random subset of at most this many samples per dataset.
        overwrite: replace an existing report in ``out``.
        command: the command line, recorded in the report.
        contact_sheet: rows of a contact sheet per model × dataset (``contact_sheet.py``; 0: none
            unless ``contact_include`` names images).
        contact_include: images or folders always shown on the contact sheets (first).
    """

    models: tuple[str | None, ...] = (None,)
    datasets: tuple[DatasetSpec, ...] = ()
    out: str | Path = "runs/eval"
    settings: EvalSettings = field(default_factory=EvalSettings)
    backend: str = "auto"
    device: str = "auto"
    batch_size: int = 8
    threads: int = 0
    workers: int | None = None
    analysis: str | None = None
    tile_overlap: int | None = None
    tile_pooling: str | None = None
    max_tiles: int | None = DEFAULT_MAX_TILES
    skip_invalid: bool = False
    limit: int | None = None
    overwrite: bool = False
    command: str = ""
    contact_sheet: int = 0
    contact_include: tuple[str, ...] = ()


@dataclass
class SuiteResult:
    report: dict
    evaluations: list[Evaluation]
    out: Path

    @property
    def report_json(self) -> Path:
        return self.out / REPORT

    @property
    def report_md(self) -> Path:
        return self.out / "report.md"


def unique_names(names: list[str], paths: list[str]) -> list[str]:
    """``names``, made unique by prefixing the parent folder, then by a ``#k`` suffix."""
    out = list(names)
    for i, n in enumerate(out):
        if out.count(n) > 1:
            clashes = [j for j, m in enumerate(out) if m == n]
            for j in clashes:
                parent = Path(paths[j]).parent.name
                out[j] = f"{parent}/{names[j]}" if parent else names[j]
    seen: dict[str, int] = {}
    for i, n in enumerate(out):
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            out[i] = f"{n}#{seen[n]}"
    return out


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def sha256(path: str | Path) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def describe_model(locator, name: str) -> dict:
    """Provenance of a loaded model: file, format, backend, precision and what the file says about itself."""
    info = locator.info
    return {
        "name": name, "path": str(info.path), "format": info.format, "backend": locator.backend.name,
        "device": locator.backend.device, "precision": info.precision, "version": info.version,
        "preprocessing": info.preprocessing.to_dict(), "config": info.config, "provenance": info.provenance,
        "sha256": sha256(info.path), "size_bytes": Path(info.path).stat().st_size if Path(info.path).is_file() else None,
        "batch_size": locator.batch_size, "preprocessor": getattr(locator.preprocessor, "name", None),
        "threshold": locator.threshold,  # the decision threshold scored with: the model's unless --threshold
        # the contract evaluated: the model's, with the analysis asked for (--analysis, --tile-*)
        "analysis": getattr(locator, "contract", info.preprocessing).to_dict(),
    }


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average": [round(v, 2) for v in load] if load else None}


ProgressFactory = Callable[[int, str], object]  # (total, description) -> object with update(n) and close()


def run_suite(config: SuiteConfig, *, progress: ProgressFactory | None = None) -> SuiteResult:
    """Evaluate every model on every dataset, write the report files into ``config.out``, return them."""
    from fakelocator.runtime import Locator

    out = Path(config.out)
    if (out / REPORT).exists() and not config.overwrite:
        raise FakeLocatorError(f"{out / REPORT} exists; pass --overwrite to replace it, or choose another --out")
    if not config.datasets:
        raise FakeLocatorError("no datasets to evaluate on")
    if not config.models:
        raise FakeLocatorError("no models to evaluate")
    settings = config.settings
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    host = machine()

    if config.contact_include:  # a wrong path fails now, not after the first evaluation
        from fakelocator.evaluation.contact_sheet import expand_paths

        expand_paths(config.contact_include)
    loaded = [(spec, spec.load(skip_invalid=config.skip_invalid, limit=config.limit, seed=settings.seed))
              for spec in config.datasets]
    if settings.held_out_families:  # a misspelt family fails now, not as an empty table after the run
        from fakelocator.evaluation.groups import check_families

        check_families(settings.held_out_families, [s for _, samples in loaded for s in samples])
    model_names = unique_names(
        ["default" if m is None else Path(m).stem for m in config.models],
        ["default" if m is None else str(m) for m in config.models],
    )

    evaluations: list[Evaluation] = []
    models: list[dict] = []
    files: dict = {"examples": {}, "robustness_plots": {}, "clustering_plots": {}, "contact_sheets": {}}
    for model, name in zip(config.models, model_names):
        with Locator.load(
            model, config.backend, config.device, config.batch_size, settings.threshold,
            workers=config.workers, analysis=config.analysis, tile_overlap=config.tile_overlap,
            tile_pooling=config.tile_pooling, max_tiles=config.max_tiles,
            **({"threads": config.threads} if config.threads else {}),
        ) as locator:
            models.append(describe_model(locator, name))
            for spec, samples in loaded:
                bar = progress(evaluation_count(samples, settings), f"{name} on {spec.name}") if progress else None
                try:
                    e = evaluate(
                        locator, samples, settings, model_name=name, dataset_name=spec.name,
                        examples_dir=out / "examples" / slug(f"{name}__{spec.name}") if settings.save_maps else None,
                        progress=bar.update if bar is not None else None,
                    )
                finally:
                    if bar is not None:
                        bar.close()
                evaluations.append(e)
                title = f"{name} on {spec.name}"
                if e.examples:
                    files["examples"][title] = [os.path.relpath(p, out) for p in e.examples]
                if e.robustness:
                    png = robustness.plot(e.robustness, out / "robustness" / f"{slug(name + '__' + spec.name)}.png", title=title)
                    files["robustness_plots"][title] = os.path.relpath(png, out)
                if config.contact_sheet or config.contact_include:
                    from fakelocator.evaluation.contact_sheet import write_contact_sheet

                    png, rows = write_contact_sheet(
                        locator, samples, e.records, out / "contact" / f"{slug(name + '__' + spec.name)}.png",
                        max(config.contact_sheet, 0), include=config.contact_include,
                        held_out=settings.held_out_families, binarize_threshold=settings.binarize_threshold,
                        seed=settings.seed, title=title,
                    )
                    files["contact_sheets"][title] = os.path.relpath(png, out)
                    files.setdefault("contact_rows", {})[title] = rows
                if e.clustering_result is not None:
                    png = clustering.plot(e.clustering_result, e.labels, out / "clustering" / f"{slug(name + '__' + spec.name)}.png",
                                          title=f"{title}: single-sample ACC {e.clustering_result.mean:.3f} ± {e.clustering_result.std:.3f}")
                    files["clustering_plots"][title] = os.path.relpath(png, out)

    report_io.write_per_image(evaluations, out / "per_image.csv")
    files["per_image"] = "per_image.csv"
    if settings.robustness:
        rows = [r for e in evaluations for r in robustness.csv_rows(e.model, e.dataset, e.metrics, e.robustness)]
        robustness.write_csv(rows, out / "robustness.csv")
        files["robustness_csv"] = "robustness.csv"

    report = {
        "fakelocator_version": __version__,
        "created": started,
        "command": config.command,
        "settings": {**settings.to_dict(), "backend": config.backend, "device": config.device,
                     "batch_size": config.batch_size, "threads": config.threads, "workers": config.workers,
                     "analysis": config.analysis, "tile_overlap": config.tile_overlap,
                     "tile_pooling": config.tile_pooling, "max_tiles": config.max_tiles,
                     "limit": config.limit, "skip_invalid": config.skip_invalid},
        "machine": host,
        "models": models,
        "datasets": [
            {"name": spec.name, "sources": spec.sources, "counts": _counts(samples),
             "properties": sorted({s.property for s in samples if s.label == 1 and s.property})}
            for spec, samples in loaded
        ],
        "evaluations": [e.to_dict() for e in evaluations],
        "cross_tables": tables.cross_tables(evaluations),
        "files": files,
    }
    report_io.write_atomic(out / "report.md", report_io.render_markdown(report, evaluations))
    report_io.write_json(report, out / REPORT)
    return SuiteResult(report, evaluations, out)


def _counts(samples: list[Sample]) -> dict[str, int]:
    return {k: sum(s.kind == k for s in samples) for k in ("real", "partial", "entire")}


def gamma_at(report: dict, model: str, dataset: str, test: str, level, metric: str) -> float:
    """Read one robustness ratio back from a report (e.g. the model card's JPEG-75 COSS bar)."""
    for e in report["evaluations"]:
        if e["model"] == model and e["dataset"] == dataset:
            entry = e["robustness"].get(test)
            if entry and level in entry["levels"]:
                v = entry["gamma"][entry["levels"].index(level)].get(metric)
                return math.nan if v is None else v
    raise FakeLocatorError(f"no {test} level {level} for {model} on {dataset} in the report")
