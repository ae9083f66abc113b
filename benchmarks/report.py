"""Writing a benchmark's results: bench.json (everything), bench.md (tables), bench.png (plots)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fakelocator.benchmarks.stages import STAGES, stages_for
from fakelocator.files import atomic_write_text


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _clean(value):
    """NaN/inf are not JSON: written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(results: dict, path: Path) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(_clean(results), indent=1, default=_json_default) + "\n")
    return path


def _f(value, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}{suffix}"


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |", *("| " + " | ".join(r) + " |" for r in rows)]


def _stage_cell(row: dict, stage: str) -> str:
    """``stage`` is a fit stage; a native row shows its counterpart (preprocess → tile, upsample → stitch)."""
    stage = stages_for(row.get("analysis", "fit"))[0][STAGES.index(stage)]
    s = row["stages"].get(stage)
    if s is None:
        return "–"
    if not s.get("p50_ms") and s.get("applicable") is False:
        return "n/a"
    return _f(s["p50_ms"] / row["batch"], 2)


#: Stage column headers: a fit stage, and its native counterpart where it differs.
STAGE_HEADERS = tuple(f if f == n else f"{f} / {n}" for f, n in zip(STAGES, stages_for("native")[0]))


def _analysis_cell(row: dict) -> str:
    """``fit``, or ``native (T tiles)`` with the tiles one input of the row takes."""
    analysis = row.get("analysis", "fit")
    return f"{analysis} ({row['tiles_per_image']} tiles)" if row.get("tiles_per_image") else analysis


def markdown(results: dict) -> str:
    env, model = results["environment"], results["model"]
    gpu = env.get("gpu") or {}
    cfg = model.get("config") or {}
    pre = cfg.get("preprocessing") or {}
    flops = model.get("flops") or {}
    lines = [f"# fakelocator bench, {env['date']}", ""]
    lines += [
        f"- command: `{env.get('command') or '(library call)'}`",
        f"- device: {env['device']}" + (f" ({gpu.get('name')})" if gpu.get("name") else ""),
        f"- CPU: {env['cpu']}, {env['usable_cores']} usable cores; load average at start {env.get('load_average_start')}, "
        f"at end {env.get('load_average_end')}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
        f"- git: {(env.get('git') or {}).get('commit', 'unknown')}" + (" (modified)" if (env.get("git") or {}).get("modified") else ""),
        f"- model: {cfg.get('backbone', '?')}" + (f" width {cfg['unet_width']}" if cfg.get("backbone") == "unet_lite" else "")
        + f" at {pre.get('height')}×{pre.get('width')}; weights: {model.get('weights')}",
        "- FLOPs per network input (an image in fit, a tile in native): " + (f"{flops['gflops_per_image']:.3f} GFLOP ({flops.get('source')})" if "gflops_per_image" in flops
                                 else flops.get("skipped", "not counted")),
        f"- preprocessor: {results.get('preprocessor')}",
    ]
    c = results["ceilings"]
    ceil = [f"host copy {c['host_copy']['gb_per_s']:.1f} GB/s"]
    if c.get("device_copy"):
        ceil.append(f"device copy {c['device_copy']['gb_per_s']:.0f} GB/s")
    mm = c.get("matmul") or {}
    if "fp16_tflops" in mm:
        ceil.append(f"matmul fp16 {mm['fp16_tflops']:.0f} / fp32 {mm['fp32_tflops']:.1f} TFLOP/s (measured)")
    elif "fp32_tflops" in mm:
        ceil.append(f"numpy matmul fp32 {1000 * mm['fp32_tflops']:.0f} GFLOP/s (measured)")
    if c.get("peak"):
        ceil.append(f"datasheet {c['peak']['name']}: fp16 {c['peak']['fp16_tflops']:g} / fp32 {c['peak']['fp32_tflops']:g} TFLOP/s")
    lines.append("- ceilings: " + "; ".join(ceil))
    lines.append("- inputs: " + "; ".join(f"{k} {v['width']}×{v['height']} JPEG ({v['mean_bytes'] / 1e3:.0f} kB mean, "
                                            f"{v['distinct_images']} distinct)" for k, v in results["inputs"].items()))
    plan = results.get("plan")
    if plan:  # what the time budget changed: the counts below are what ran, not what was asked
        changed = "; ".join(f"{k} {v['asked']} → {v['ran']}" for k, v in plan["changed_for_the_budget"].items())
        budget = f"budget {plan['budget_s']:.0f} s" if plan["budget_s"] else "no time budget"
        lines.append(f"- plan: {budget}, predicted {plan['predicted_s']['total']:.0f} s of measuring"
                     + (f"; lowered for the budget: {changed}" if changed else ""))
    lines.append("")

    runs = results["runs"]
    lines += ["## End to end (Locator.locate / locate_iter)", "",
              "Latency: one `locate(batch)` call, p50 / p90 / p99 ms. Throughput: a `locate_iter` stream. "
              "CPU ms/image: this process's CPU time (all threads) per image during that stream.", ""]
    lines += _table(
        ["input", "backend", "precision", "device", "analysis", "batch", "latency p50 / p90 / p99 ms", "images/s",
         "CPU ms/image", "× baseline", "× fp32"],
        [[r["input"], r["backend"], r["precision"], r["device"], _analysis_cell(r), str(r["batch"]),
          " / ".join(_f(r["end_to_end"]["latency"][k]) for k in ("p50_ms", "p90_ms", "p99_ms")),
          _f(r["end_to_end"]["images_per_s"]), _f(r["end_to_end"].get("cpu_ms_per_image")), _f(r.get("vs_baseline"), 2), _f(r.get("vs_fp32"), 2)]
         for r in runs],
        "llllllrrrrr",
    )
    if any(r["stages"] for r in runs):
        lines += ["", "## Stages (ms per image: p50 of batch times / batch; n/a = no such step on this device)", ""]
        lines += _table(
            ["input", "backend", "precision", "analysis", "batch", *STAGE_HEADERS, "serial", "pre/post share"],
            [[r["input"], r["backend"], r["precision"], _analysis_cell(r), str(r["batch"]), *(_stage_cell(r, s) for s in STAGES),
              _f(r.get("serial_ms_per_image"), 2), _pct(r.get("pre_post_fraction"))] for r in runs],
            "lllll" + "r" * (len(STAGES) + 2),
        )
        lines += ["", "serial = decode … upsample (stitch) one after the other (without write); "
                  "pre/post share = (preprocess + upsample) / serial, in native (tile + stitch) / serial. "
                  "In native, batch counts tiles per inference call and the stages are per image.", ""]
        lines += ["## Limits", ""]
        lines += _table(
            ["input", "backend", "precision", "batch", "inference", "of peak", "of measured matmul",
             "preprocess / tile GB/s (of copy)", "upsample / stitch GB/s (of copy)"],
            [[r["input"], r["backend"], r["precision"], str(r["batch"]), _throughput_cell(r),
              _pct(r["limits"].get("fraction_of_peak")), _pct(r["limits"].get("fraction_of_measured_matmul")),
              *(f"{_f(r['limits'].get(st + '_gb_per_s'), 2)} ({_pct(r['limits'].get(st + '_fraction_of_host_copy'))})"
                for st in stages_for(r.get("analysis", "fit"))[1])]
             for r in runs],
            "llllrrrrr",
        )
    base = results.get("baseline")
    lines += ["", "## Naive baseline (PIL decode, torchvision resize, PyTorch eager fp32, one image at a time)", ""]
    if not base:
        lines.append("Not run (--no-baseline).")
    elif "skipped" in base:
        lines.append(f"Skipped: {base['skipped']}.")
    else:
        lines.append(f"Weights: {base['weights']}. `× baseline` compares with the faster of the rows of an input.")
        lines.append("")
        lines += _table(
            ["input", "device", "torch threads", "images/s", "CPU ms/image", "latency p50 / p90 / p99 ms",
             "decode", "preprocess", "infer", "upsample"],
            [[k, v["device"], str(v.get("torch_threads", "")), _f(v["images_per_s"]), _f(v.get("cpu_ms_per_image")),
              " / ".join(_f(v["latency"][p]) for p in ("p50_ms", "p90_ms", "p99_ms")),
              *(_f(v["stages"][s]["p50_ms"], 2) for s in ("decode", "preprocess", "infer", "upsample"))]
             for k, runs in (base.get("all_runs") or {k: [v] for k, v in base["inputs"].items()}).items() for v in runs],
            "lllrrrrrrr",
        )
    mem = results.get("memory")
    if mem:
        lines += ["", "## Memory", ""]
        lines.append(f"{mem['images']} {mem['input']} images, {mem['backend']} {mem['precision']}, batch {mem['batch']}, "
                     f"{mem['images_per_s']:.1f} images/s.")
        for key, label in (("rss", "RSS"), ("gpu", "GPU memory used")):
            m = mem.get(key)
            if m:
                lines.append(f"- {label}: {m['at_warmup_mb']:.0f} MB at {mem['warmup_fraction']:.0%} of the run, peak after it "
                             f"{m['peak_after_mb']:.0f} MB, at the end {m['end_mb']:.0f} MB: growth {m['growth_mb']:+.1f} MB, "
                             f"trend {m.get('trend_mb_per_1000', 0.0):+.2f} MB per 1000 images")
    if results.get("targets"):
        lines += ["", "## Targets", ""]
        verdict = {True: "met", False: "**not met**", None: "not measured"}
        lines += _table(["target", "required", "measured", "verdict", "detail"],
                        [[t["target"], t["required"], _measured(t), verdict[t["met"]],
                          t["detail"]] for t in results["targets"]])
    if results.get("skipped"):
        lines += ["", "## Skipped", ""]
        lines += [f"- {s['backend']}" + (f" {s['precision']}" if s.get("precision") else "")
                  + (f" batch {s['batch']}" if s.get("batch") else "") + f": {s['reason']}" for s in results["skipped"]]
    return "\n".join(lines) + "\n"


def _throughput_cell(row: dict) -> str:
    tflops = row["limits"].get("achieved_tflops")
    if tflops is None:
        return "–"
    return f"{1000 * tflops:.1f} GFLOP/s" if row["device"] == "cpu" else f"{tflops:.1f} TFLOP/s"


def plot(results: dict, path: Path) -> Path | None:
    """Throughput vs batch size per backend/precision/input, and the stage breakdown; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = results["runs"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5))
    styles = ["-o", "--s", ":^", "-.d"]
    kinds = list(dict.fromkeys(r["input"] for r in runs))
    for (backend, precision, kind, analysis) in dict.fromkeys(
            (r["backend"], r["precision"], r["input"], r.get("analysis", "fit")) for r in runs):
        rows = sorted((r for r in runs if (r["backend"], r["precision"], r["input"], r.get("analysis", "fit"))
                       == (backend, precision, kind, analysis)), key=lambda r: r["batch"])
        ax1.plot([r["batch"] for r in rows], [r["end_to_end"]["images_per_s"] for r in rows],
                 styles[kinds.index(kind) % len(styles)], label=f"{backend} {precision}, {kind}, {analysis}")
    base = results.get("baseline") or {}
    for kind, b in (base.get("inputs") or {}).items():
        ax1.axhline(b["images_per_s"], color="gray", lw=0.8, ls=styles[kinds.index(kind) % len(styles)][:-1] if kind in kinds else "-",
                    label=f"naive baseline, {kind}")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("images/s (end to end, locate_iter)")
    ax1.set_title("Throughput vs batch size")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)

    staged = [r for r in runs if r["stages"]]
    if staged:
        best = {}  # per backend, precision and input: the batch size with the highest throughput
        for r in staged:
            key = (r["backend"], r["precision"], r["input"], r.get("analysis", "fit"))
            if key not in best or r["end_to_end"]["images_per_s"] > best[key]["end_to_end"]["images_per_s"]:
                best[key] = r
        bars = list(best.values())
        labels = [f"{r['backend']} {r['precision']} {r.get('analysis', 'fit')}\n{r['input']}, batch {r['batch']}" for r in bars]
        bottom = [0.0] * len(bars)
        for slot, header in zip(STAGES, STAGE_HEADERS):
            values = [(r["stage_ms_per_image"].get(stages_for(r.get("analysis", "fit"))[0][STAGES.index(slot)]) or 0.0)
                      for r in bars]
            ax2.bar(range(len(bars)), values, bottom=bottom, label=header)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax2.set_xticks(range(len(bars)), labels, fontsize=7)
        ax2.set_ylabel("ms per image (p50, each stage alone)")
        ax2.set_title("Stage breakdown at each variant's best batch size")
        ax2.legend(fontsize=7)
        ax2.grid(True, axis="y", alpha=0.3)
    else:
        ax2.set_axis_off()
    env = results["environment"]
    fig.suptitle(f"fakelocator bench: {env['device']} ({(env.get('gpu') or {}).get('name') or env['cpu']}), {env['date']}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(results: dict, out: Path) -> dict[str, Path | None]:
    """bench.json, bench.md and bench.png under ``out``; their paths (png None without matplotlib)."""
    out = Path(out)
    md = out / "bench.md"
    md.write_text(markdown(results))
    return {"json": write_json(results, out / "bench.json"), "markdown": md, "png": plot(results, out / "bench.png")}


def _measured(target: dict) -> str:
    """A target's measured value in the unit of its requirement: a share as a percentage ("1.2 %"
    against "< 15 %"), anything else as it is."""
    value = target["measured"]
    if value is None:
        return "–"
    if isinstance(value, (int, float)) and target["required"].rstrip().endswith("%"):
        return f"{100 * value:.1f} %"
    return str(value)
