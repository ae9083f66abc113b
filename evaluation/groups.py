"""Per-image results grouped by manipulation family, by image size, and into held-out vs seen families.

**Family** of a sample: the manifest's ``family`` column when the dataset has one; else its
``upsampler`` column (``fakelocator synth`` writes it; parameters and numbering dropped:
``transposed_conv2(k4,s2)`` → ``transposed_conv``); else the ``property``; else the kind. Real
images belong to no family (``real``).

**Size bucket**: the image's long side, ≤ 256, 257–512, 513–1024, > 1024 pixels.

A row holds: ``n`` images; ``acc`` (the fraction of its images classified right: for a family its
detection rate; for a size bucket, real and fake images together) and
``auc`` (a fake group's fakes against the real images: every real image of the dataset for a
family, the real images of the same bucket for a size bucket); the model's localization means
(COSS, PSNR, IoU, pixel AUC, F1 best, F1 at 0.5) over the group's manipulated images; and on the
same images the constant and centred-prior maps' COSS (``baselines``), with ``coss_ratio`` = COSS /
constant COSS.
"""

from __future__ import annotations

import csv
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation import baselines
from fakelocator.evaluation.metrics import auc as roc_auc

#: (name, largest long side) of the size buckets; the last has no upper bound.
SIZE_BUCKETS = (("≤256", 256), ("257–512", 512), ("513–1024", 1024), (">1024", None))
GROUP_KEYS = ("coss", "psnr", "iou", "pixel_auc", "f1_best", "f1_05")


def size_bucket(height: int | None, width: int | None) -> str | None:
    if not height or not width:
        return None
    side = max(int(height), int(width))
    for name, top in SIZE_BUCKETS:
        if top is None or side <= top:
            return name
    return None  # unreachable


@lru_cache(maxsize=64)
def _manifest(root: str) -> dict[str, dict[str, str]] | None:
    """``ROOT/manifest.csv`` rows keyed by the resolved image path, or None without a manifest."""
    path = Path(root) / "manifest.csv"
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {str((Path(root) / (r.get("image") or "").strip()).resolve()): r for r in rows}


def normalize_upsampler(text: str) -> str:
    """``transposed_conv2(k4,s2)`` → ``transposed_conv``: the family without parameters or numbering."""
    name = text.split("(")[0].strip()
    name = re.sub(r"\d+$", "", name)
    return name.removesuffix("_ac") or text.strip()


def family_of(sample) -> str:
    """The manipulation family of one ``training.samples.Sample`` (module docstring)."""
    if sample.label == 0:
        return "real"
    row = None
    if sample.root is not None:
        table = _manifest(str(sample.root))
        if table is not None:
            row = table.get(str(Path(sample.image).resolve()))
    if row is not None:
        family = (row.get("family") or "").strip()
        if family:
            return family
        upsampler = (row.get("upsampler") or "").strip()
        if upsampler:
            return normalize_upsampler(upsampler)
    return sample.property or sample.kind


def parse_families(text: str | None) -> tuple[str, ...]:
    """``"a, b,c"`` → ("a", "b", "c"); empty names are refused."""
    if not text:
        return ()
    names = tuple(n.strip() for n in text.split(","))
    if any(not n for n in names):
        raise FakeLocatorError(f"--held-out-families: empty family name in {text!r}")
    return tuple(dict.fromkeys(names))


def check_families(held_out: tuple[str, ...], samples) -> None:
    """FakeLocatorError when a held-out family name matches no manipulated image of ``samples`` (in
    any dataset evaluated), listing the families the data has: a misspelt name would otherwise give
    an empty leave-families-out row. A family present in one dataset and absent from another is
    fine (its row there has n = 0)."""
    known = sorted({family_of(s) for s in samples if s.label == 1})
    unknown = [n for n in held_out if n not in known]
    if unknown:
        raise FakeLocatorError(f"--held-out-families: {', '.join(unknown)} match no manipulated image in the data; "
                               f"its families are: {', '.join(known) or 'none (no manipulated images)'}")


def nanmean(values) -> float:
    a = np.asarray(list(values), dtype=np.float64)
    return float(np.nanmean(a)) if a.size and not np.isnan(a).all() else math.nan


def group_row(group: str, name: str, records: list[dict], reals: list[dict], choice: dict, threshold: float) -> dict:
    """One table row over ``records`` (all of one label, or mixed for a size bucket), detection AUC
    against ``reals``."""
    scored = [r for r in records if r.get("score") is not None]
    fakes = [r for r in scored if r["label"] == 1]
    real = [r for r in scored if r["label"] == 0]
    row = {"group": group, "name": name, "n": len(records), "n_fake": len(fakes), "n_real": len(real),
           "acc": math.nan, "auc": math.nan, "mean_score": nanmean(r["score"] for r in scored)}
    if scored:  # fakes: detected; reals: passed
        row["acc"] = float(np.mean([(r["score"] >= threshold) == (r["label"] == 1) for r in scored]))
    rs = [r for r in reals if r.get("score") is not None]
    if fakes and rs:
        row["auc"] = roc_auc([r["score"] for r in fakes + rs], [1] * len(fakes) + [0] * len(rs))
    localized = [r for r in records if r.get("prior") is not None]
    row["n_localized"] = len(localized)
    row["n_pixel"] = sum(1 for r in localized if r.get("pixel_auc") is not None and math.isfinite(r["pixel_auc"]))
    for k in GROUP_KEYS:
        row[k] = nanmean(r.get(k, math.nan) for r in localized)
    base = baselines.means([r["prior"] for r in localized], choice) if localized else None
    row["const_coss"] = base["constant"]["coss"] if base else math.nan
    row["centred_coss"] = base["centred"]["coss"] if base else math.nan
    row["coss_ratio"] = baselines.ratio(row["coss"], row["const_coss"])
    return row


def family_rows(records: list[dict], choice: dict, threshold: float) -> list[dict]:
    reals = [r for r in records if r["label"] == 0]
    names = sorted({r["family"] for r in records if r["label"] == 1})
    return [group_row("family", name, [r for r in records if r["label"] == 1 and r["family"] == name], reals, choice, threshold)
            for name in names]


def size_rows(records: list[dict], choice: dict, threshold: float) -> list[dict]:
    rows = []
    for name, _ in SIZE_BUCKETS:
        members = [r for r in records if r.get("size_bucket") == name]
        if members:
            rows.append(group_row("size", name, members, [r for r in members if r["label"] == 0], choice, threshold))
    return rows


def held_out_rows(records: list[dict], held_out: tuple[str, ...], choice: dict, threshold: float) -> list[dict]:
    """Leave-families-out: every held-out family, all held-out families together, and the seen
    (not held-out) fakes together. A named family absent from the data gets a row with n = 0."""
    if not held_out:
        return []
    reals = [r for r in records if r["label"] == 0]
    fakes = [r for r in records if r["label"] == 1]
    rows = [group_row("held-out family", name, [r for r in fakes if r["family"] == name], reals, choice, threshold)
            for name in held_out]
    rows.append(group_row("held out, all", ", ".join(held_out), [r for r in fakes if r["family"] in held_out], reals, choice, threshold))
    seen = [r for r in fakes if r["family"] not in held_out]
    rows.append(group_row("seen, all", ", ".join(sorted({r["family"] for r in seen})) or "—", seen, reals, choice, threshold))
    return rows
