"""Tables a person reads: the metric table (paper Tables IV/V), cross tables (Tables I, VI, VIII),
breakdowns, robustness ratios; as data (for report.json) and as Markdown (for report.md)."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from fakelocator.evaluation.robustness import PLOTTED, format_level
from fakelocator.evaluation.runner import TABLE_KEYS, Evaluation

#: Metrics given a model × dataset matrix by default: what the paper's cross tables and the model card use.
CROSS_KEYS = ("acc", "real_acc", "fake_acc", "auc", "eer", "coss", "psnr", "ssim", "iou")
#: The cross tables report.md shows (report.json has every one of CROSS_KEYS).
MARKDOWN_CROSS_KEYS = ("acc", "fake_acc", "auc", "coss", "psnr", "ssim", "iou", "cluster_acc")
LOWER_IS_BETTER = ("eer", "iinc")


def label(key: str, binarize_threshold: float | None = None) -> str:
    names = {"acc": "ACC", "real_acc": "real ACC", "fake_acc": "fake ACC", "auc": "AUC", "eer": "EER",
             "coss": "COSS", "psnr": "PSNR", "ssim": "SSIM", "dice": "Dice", "iou": "IoU", "pbca": "PBCA",
             "iinc": "IINC", "cluster_acc": "single-sample ACC"}
    name = names.get(key, key)
    if binarize_threshold is not None and key in ("dice", "iou", "pbca", "iinc"):
        name += f"@{binarize_threshold:g}"
    return name


def fmt(value, key: str = "") -> str:
    """PSNR in dB with 2 decimals, counts as integers, everything else with 4 decimals; undefined → —."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, int) or key == "n" or key.startswith("n_"):
        return str(int(value))
    return f"{value:.2f}" if key == "psnr" else f"{value:.4f}"


def _numeric(cell) -> bool:
    text = str(cell)
    try:
        float(text)
        return True
    except ValueError:
        return text == "—"


def markdown(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub-flavoured Markdown table; columns of numbers are right-aligned, the others left."""
    headers = [str(h) for h in headers]
    rows = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(headers))]
    rule = ["---:" if n else ":---" for n in numeric]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- as data


def cross_table(evaluations: list[Evaluation], key: str) -> dict:
    """One metric as a models × datasets matrix (None where a pair was not evaluated or is undefined)."""
    models = list(dict.fromkeys(e.model for e in evaluations))
    datasets = list(dict.fromkeys(e.dataset for e in evaluations))
    cell = {(e.model, e.dataset): _value(e, key) for e in evaluations}
    values = [[cell.get((m, d)) for d in datasets] for m in models]
    return {"metric": key, "models": models, "datasets": datasets, "values": values}


def cross_tables(evaluations: list[Evaluation], keys: Sequence[str] = CROSS_KEYS) -> dict[str, dict]:
    tables = {k: cross_table(evaluations, k) for k in keys}
    if any(e.clustering and "mean" in e.clustering for e in evaluations):
        tables["cluster_acc"] = cross_table(evaluations, "cluster_acc")
    return tables


def _value(e: Evaluation, key: str):
    if key == "cluster_acc":
        v = (e.clustering or {}).get("mean")
    else:
        v = e.metrics.get(key)
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


# ----------------------------------------------------------------------------------- as Markdown


def metric_table_md(evaluations: list[Evaluation], binarize_threshold: float) -> str:
    """The paper's Table IV/V columns, one row per model × dataset."""
    headers = ["model", "dataset", "images"] + [label(k, binarize_threshold) for k in TABLE_KEYS]
    rows = []
    for e in evaluations:
        n = e.metrics.get("n_real", 0) + e.metrics.get("n_fake", 0)
        rows.append([e.model, e.dataset, n] + [fmt(e.metrics.get(k), k) for k in TABLE_KEYS])
    return markdown(headers, rows)


def cross_table_md(table: dict, binarize_threshold: float | None = None) -> str:
    key = table["metric"]
    arrow = "lower is better" if key in LOWER_IS_BETTER else "higher is better"
    title = f"**{label(key, binarize_threshold)}** ({arrow}; rows: models, columns: datasets)"
    rows = [[m] + [fmt(v, key) for v in vals] for m, vals in zip(table["models"], table["values"])]
    return title + "\n\n" + markdown(["model \\ dataset"] + table["datasets"], rows)


def breakdown_md(e: Evaluation, binarize_threshold: float) -> str:
    keys = ("coss", "psnr", "ssim", "iou")
    headers = ["group", "name", "n", "ACC", "AUC vs real", "mean score"] + [label(k, binarize_threshold) for k in keys]
    rows = [[r["group"], r["name"], r["n"], fmt(r["acc"]), fmt(r["auc"]), fmt(r["mean_score"])] + [fmt(r[k], k) for k in keys]
            for r in e.breakdown]
    return markdown(headers, rows)


def robustness_md(e: Evaluation, metrics: Sequence[str] = PLOTTED) -> str:
    """γ per test and level for the plotted metrics, and the degraded values themselves."""
    headers = ["test", "level"] + [f"γ {label(m)}" for m in metrics] + [label(m) for m in metrics]
    rows = []
    for test, entry in e.robustness.items():
        for level, values, ratios in zip(entry["levels"], entry["metrics"], entry["gamma"]):
            rows.append([test, format_level(level)] + [fmt(ratios.get(m), "gamma") for m in metrics]
                        + [fmt(values.get(m), m) for m in metrics])
    clean = ["clean", "—"] + ["1.0000"] * len(metrics) + [fmt(e.metrics.get(m), m) for m in metrics]
    return markdown(headers, [clean] + rows)


# ------------------------------------------------------------------------------ baselines and groups

PIXEL_LABELS = {"pixel_auc": "pixel AUC", "f1_best": "F1 best", "f1_05": "F1@0.5"}


def baselines_md(e: Evaluation) -> str:
    """The model beside the constant and centred-prior maps on the same images, per subset."""
    b = e.baselines or {}
    subsets = b.get("subsets", {})
    if not subsets:
        return "No manipulated image was localized: nothing to compare."
    keys = ("coss", "psnr", "pixel_auc", "f1_best", "f1_05")
    headers = ["images", "map", "n", "COSS", "COSS / constant COSS", "PSNR", "pixel AUC", "F1 best", "F1@0.5"]
    rows = []
    for subset, entry in subsets.items():
        for name, values in (("model", entry["model"]), (f"constant {fmt(b['value'])}", entry["constant"]),
                             (f"centred prior s={b['scale']:g}", entry["centred"]), ("zero", entry["zero"])):
            r = ratio_of(values.get("coss"), entry["constant"].get("coss"))
            rows.append([subset, name, entry["n"], fmt(values["coss"], "coss"), fmt(r)] + [fmt(values[k], k) for k in keys[1:]])
    return markdown(headers, rows)


def ratio_of(model, baseline) -> float:
    from fakelocator.evaluation.baselines import ratio

    return ratio(model, baseline)


def groups_md(rows: list[dict], binarize_threshold: float, group: str | tuple[str, ...]) -> str:
    """Family, size or leave-families-out rows as a table."""
    wanted = (group,) if isinstance(group, str) else group
    chosen = [r for r in rows if r["group"] in wanted]
    headers = ["group", "name", "n (fake/real)", "ACC", "AUC vs real", "COSS", "constant COSS", "COSS / constant",
               "centred COSS", "PSNR", label("iou", binarize_threshold), "pixel AUC", "F1 best", "F1@0.5"]
    out = []
    for r in chosen:
        out.append([r["group"], r["name"], f"{r['n']} ({r['n_fake']}/{r['n_real']})", fmt(r["acc"]), fmt(r["auc"]),
                    fmt(r["coss"]), fmt(r["const_coss"]), fmt(r["coss_ratio"]), fmt(r["centred_coss"]),
                    fmt(r["psnr"], "psnr"), fmt(r["iou"]), fmt(r["pixel_auc"]), fmt(r["f1_best"]), fmt(r["f1_05"])])
    return markdown(headers, out)


def pixel_table_md(evaluations: list[Evaluation]) -> str:
    """One row per model × dataset: the pixel-level metrics and COSS against the baseline maps, over
    all manipulated images."""
    headers = ["model", "dataset", "pixel AUC", "F1 best", "F1@0.5", "COSS", "constant COSS", "COSS / constant",
               "centred COSS", "partial COSS", "partial constant COSS", "partial COSS / constant"]
    rows = []
    for e in evaluations:
        subsets = (e.baselines or {}).get("subsets", {})
        m, p = subsets.get("manipulated"), subsets.get("partial")
        row = [e.model, e.dataset, fmt(e.metrics.get("pixel_auc")), fmt(e.metrics.get("f1_best")), fmt(e.metrics.get("f1_05"))]
        row += [fmt(m["model"]["coss"]), fmt(m["constant"]["coss"]), fmt(m["coss_ratio"]), fmt(m["centred"]["coss"])] if m else ["—"] * 4
        row += [fmt(p["model"]["coss"]), fmt(p["constant"]["coss"]), fmt(p["coss_ratio"])] if p else ["—"] * 3
        rows.append(row)
    return markdown(headers, rows)
