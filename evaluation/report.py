"""``report.json`` (everything, machine-readable) and ``report.md`` (the tables a person reads), plus
``per_image.csv`` and ``robustness.csv``.

JSON has no NaN: undefined values (AUC with one class, real ACC without real images...) are ``null``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from fakelocator.evaluation import tables
from fakelocator.files import atomic_write_bytes
from fakelocator.evaluation.runner import TABLE_KEYS, Evaluation

PER_IMAGE_FIELDS = ("model", "dataset", "image", "kind", "property", "family", "width", "height", "label", "score",
                    *TABLE_KEYS[5:], "pixel_auc", "f1_best", "f1_05")



def _threshold_text(given: float | None, models: list[dict]) -> str:
    """The decision threshold scored with: the one given, else each model's calibrated one."""
    if given is not None:
        return f"{given:g}"
    own = sorted({m["threshold"] for m in models if m.get("threshold") is not None})
    return (f"{own[0]:g} (the model's)" if len(own) == 1 else
            "each model's own (" + ", ".join(f"{m['name']} {m['threshold']:g}" for m in models) + ")")

def jsonable(value: Any) -> Any:
    """NaN/inf → None, numpy scalars and arrays → Python, tuples → lists, Paths → strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def write_json(report: dict, path: Path) -> Path:
    return write_atomic(path, json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n")


def write_per_image(evaluations: list[Evaluation], path: Path) -> Path:
    """One row per (model, dataset, image) of the clean evaluation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=PER_IMAGE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for e in evaluations:
            for rec in e.records:
                row = {"model": e.model, "dataset": e.dataset, **rec}
                writer.writerow({k: "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
                                 for k, v in row.items()})
    return path


def render_markdown(report: dict, evaluations: list[Evaluation]) -> str:
    """report.md: settings, models, datasets, the metric table, cross tables, breakdowns, robustness,
    clustering, errors, timings."""
    s = report["settings"]
    thr = s["binarize_threshold"]
    out = ["# fakelocator eval", ""]
    out.append(
        f"Created {report['created']} by fakelocator {report['fakelocator_version']}. "
        f"Decision threshold {_threshold_text(s['threshold'], report.get('models', []))}; maps binarized at {thr:g} for IoU, Dice, PBCA, IINC; "
        f"localization at {'the network input size' if s['at_model_resolution'] else 'each image' + chr(39) + 's full resolution'}, "
        "on manipulated images only, averaged per image (docs/metrics.md)."
    )
    if report.get("command"):
        out += ["", f"Command: `{report['command']}`"]
    out += ["", "## Models", ""]
    out.append(tables.markdown(
        ["model", "file", "format", "backend", "device", "precision", "version", "sha256"],
        [[m["name"], m["path"], m["format"], m["backend"], m["device"], m["precision"], m["version"] or "—",
          (m.get("sha256") or "")[:12]] for m in report["models"]],
    ))
    out += ["", "## Datasets", ""]
    out.append(tables.markdown(
        ["dataset", "sources", "real", "partial", "entire", "properties"],
        [[d["name"], ", ".join(d["sources"]), d["counts"].get("real", 0), d["counts"].get("partial", 0),
          d["counts"].get("entire", 0), ", ".join(d["properties"]) or "—"] for d in report["datasets"]],
    ))
    out += ["", "## Metrics (the columns of the paper's Tables IV and V)", "",
            "ACC, real ACC, fake ACC, AUC, EER over every image; the rest over manipulated images.", ""]
    out.append(tables.metric_table_md(evaluations, thr))
    out += ["", "## Pixel level, and against maps that know nothing", "",
            f"Pixel AUC and F1 per image against the ground truth binarized at {thr:g} (no hand-drawn masks exist: "
            "Eq. 7 is a difference image), over the manipulated images with both manipulated and untouched pixels, "
            "then averaged; F1 best takes each image's best threshold (IMDL-BenCo / TruFor), F1@0.5 thresholds the "
            "map at 0.5. The constant map is the evaluated images' mean ground-truth value; the centred prior a "
            "centred Gaussian blob sized to the typical manipulated region (docs/metrics.md). Read every COSS "
            "against theirs.", ""]
    out.append(tables.pixel_table_md(evaluations))

    if len(report["models"]) > 1 or len(report["datasets"]) > 1:
        out += ["", "## Cross tables (paper Tables I, VI, VIII)", "",
                "report.json has these and real ACC, EER as well.", ""]
        for key, table in report["cross_tables"].items():
            if key in tables.MARKDOWN_CROSS_KEYS:
                out += [tables.cross_table_md(table, thr), ""]

    for e in evaluations:
        title = f"{e.model} on {e.dataset}"
        out += ["", f"## {title}", ""]
        out += ["### By kind and property", "",
                "A fake group's ACC is its detection rate and its AUC separates it from all real images; "
                "the real row's ACC is real ACC.", "", tables.breakdown_md(e, thr)]
        b = e.baselines or {}
        if b.get("subsets"):
            out += ["", "### Against maps that know nothing", "",
                    f"Constant map c = {tables.fmt(b['value'])} (the mean ground-truth value of these images); centred "
                    f"prior: a Gaussian blob with σ = {b['scale']:g} × each side, whose half-maximum ellipse matches the "
                    f"median manipulated area ({100 * b['area']:.1f} % of the image, binarized ground truth of the "
                    "partial edits). report.json has every blob size.", "", tables.baselines_md(e)]
        if e.groups:
            out += ["", "### By manipulation family", "",
                    "Family: the manifest's `family` column, else its `upsampler` (without parameters), else the "
                    "property. AUC: the family's fakes against every real image.", "",
                    tables.groups_md(e.groups, thr, "family")]
            out += ["", "### By image size (long side)", "",
                    "ACC over the bucket's real and fake images; AUC of its fakes against its real images.", "",
                    tables.groups_md(e.groups, thr, "size")]
            if s.get("held_out_families"):
                out += ["", "### Leave-families-out", "",
                        f"Families held out of training: {', '.join(s['held_out_families'])}. A family absent from "
                        "this dataset has n = 0.", "",
                        tables.groups_md(e.groups, thr, ("held-out family", "held out, all", "seen, all"))]
        sheet = report["files"].get("contact_sheets", {}).get(f"{e.model} on {e.dataset}")
        if sheet:
            out += ["", "### Contact sheet", "", "Input | ground truth | map | overlay (colour bar: map value).", "",
                    f"![contact sheet of {title}]({sheet})"]
        if e.robustness:
            plot = report["files"].get("robustness_plots", {}).get(title)
            out += ["", "### Robustness (Sec. V-B8, Figs. 13–15)", "",
                    "γ = metric(degraded) / metric(clean); ground truth of a degraded fake is Eq. 7 of the clean "
                    f"real image and the degraded fake. Real images degraded too: {'yes' if s['degrade_reals'] else 'no'}.",
                    "", tables.robustness_md(e)]
            if plot:
                out += ["", f"![robustness of {title}]({plot})"]
        if e.clustering is not None:
            out += ["", "### Single-sample clustering (Sec. IV-D)", ""]
            c = e.clustering
            if "skipped" in c:
                out.append(f"Not run: {c['skipped']}.")
            else:
                accs = ", ".join(f"{a:.3f}" for a in c["accuracies"])
                out.append(
                    f"t-SNE of the encoder features → k-means (2 clusters) → one labelled sample names the clusters. "
                    f"Accuracy over {len(c['accuracies'])} picks: **{c['mean']:.4f} ± {c['std']:.4f}** "
                    f"(each pick: {accs}); best possible naming {c['best_naming_acc']:.4f}; "
                    f"the classifier's ACC on the same images {tables.fmt(e.metrics.get('acc'))}."
                )
                plot = report["files"].get("clustering_plots", {}).get(title)
                if plot:
                    out += ["", f"![t-SNE of {title}]({plot})"]
        if e.examples:
            out += ["", "### Examples", ""] + [f"![example]({p})" for p in report["files"]["examples"].get(title, [])]
        if e.errors:
            out += ["", f"### Errors ({len(e.errors)})", ""]
            out += [f"- `{err['image']}` ({err['variant']}): {err['reason']}" for err in e.errors[:50]]
            if len(e.errors) > 50:
                out.append(f"- … and {len(e.errors) - 50} more (report.json lists all)")

    out += ["", "## Timings", ""]
    headers = ["model", "dataset", "evaluations", "wall s", "per s", "read+GT ms", "preprocess ms", "infer ms",
               "upsample ms", "metrics ms"]
    rows = []
    for e in evaluations:
        t = e.timings
        rows.append([e.model, e.dataset, t["evaluations"], f"{t['wall_s']:.2f}", f"{t['per_second']:.1f}"]
                    + [f"{t.get(k, math.nan):.2f}" for k in ("prepare_ms", "preprocess_ms", "infer_ms", "upsample_ms", "metrics_ms")])
    out.append(tables.markdown(headers, rows))
    m = report.get("machine", {})
    out += ["", f"Per-image stage times are means over every (image, variant) evaluation; the stages overlap, so "
            f"they do not add up to the wall time. Machine: {m.get('cpus', '?')} CPUs, load average "
            f"{m.get('load_average', '?')} at the start."]
    return "\n".join(out) + "\n"
