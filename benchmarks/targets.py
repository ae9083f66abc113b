"""The project's performance targets (issue 9), checked against a bench.json's measurements.

Each target applies only to the configuration it names (device kind, architecture, input, batch);
elsewhere it is reported as not measured, never as met or missed. ``met`` is True, False, or None
when the run does not contain what the target needs.

- CPU, default model (``ModelConfig()``: unet_lite width 8 at 224²), 1080p JPEG inputs:
  end to end ≥ 50 images/s, and ≥ 3× the naive baseline.
- GPU, DeepLabv3-ResNet101 at 224², batch 64: the best backend ≥ 5× the naive baseline, ≥ 40 % of
  the device's FP16 peak in the inference stage, pre/post < 10 % of the end-to-end time per image
  with 1080p inputs, where the end-to-end time is the serial sum of the stages (decode … upsample,
  each timed alone). The pipelined throughput overlaps stages on different threads, so its time
  per image cannot be split into shares; bench.json keeps that ratio too
  (``pre_post_fraction_of_end_to_end``), for information.
- Native analysis (issue 13), 1080p inputs: tile + stitch (each timed alone, per image) under 15 %
  of the end-to-end time per image (1 / the pipelined throughput). The targets above are for ``fit``
  rows only.
- Memory: the long run's RSS (and GPU memory) flat after warm-up, here: growth ≤ max(32 MB, 5 % of
  the value at the end of warm-up).
"""

from __future__ import annotations

CPU_IMAGES_PER_S = 50.0
CPU_SPEEDUP = 3.0
GPU_SPEEDUP = 5.0
GPU_FP16_PEAK_FRACTION = 0.40
GPU_PRE_POST_FRACTION = 0.10
GPU_BATCH = 64
MEMORY_FLAT_MB = 32.0
MEMORY_FLAT_FRACTION = 0.05
#: Issue 13: tiling and stitching together under 15 % of end-to-end time in native analysis.
NATIVE_TILE_STITCH_FRACTION = 0.15


def _is_default_model(config: dict) -> bool:
    pre = config.get("preprocessing") or {}
    return (config.get("backbone") == "unet_lite" and config.get("unet_width") == 8
            and (pre.get("height"), pre.get("width")) == (224, 224))


def _is_paper_model(config: dict) -> bool:
    pre = config.get("preprocessing") or {}
    return config.get("backbone") == "deeplabv3_resnet101" and (pre.get("height"), pre.get("width")) == (224, 224)


def _target(name: str, required: str, measured=None, met=None, detail: str = "") -> dict:
    return {"target": name, "required": required, "measured": measured, "met": met, "detail": detail}


def _best(rows: list[dict]) -> dict | None:
    return max(rows, key=lambda r: r["end_to_end"]["images_per_s"], default=None)


def evaluate(results: dict) -> list[dict]:
    config = results.get("model", {}).get("config") or {}
    runs = results.get("runs", [])
    fit_rows = [r for r in runs if r.get("analysis", "fit") == "fit"]  # the targets below were set for fit
    cpu_rows = [r for r in fit_rows if r["device"] == "cpu"]
    gpu_rows = [r for r in fit_rows if r["device"] != "cpu"]
    out = []

    cores = results.get("environment", {}).get("usable_cores")
    best = _best([r for r in cpu_rows if r["input"] == "1080p"])
    if best is None or not _is_default_model(config):
        why = "needs a CPU run of the default architecture (unet_lite width 8, 224²) on 1080p inputs"
        out.append(_target("CPU end to end, 1080p JPEG", f">= {CPU_IMAGES_PER_S:g} images/s", detail=why))
        out.append(_target("CPU speed-up over the naive baseline, 1080p", f">= {CPU_SPEEDUP:g}x", detail=why))
    else:
        where = f"{best['backend']} {best['precision']}, batch {best['batch']}, {cores} usable cores"
        ips = best["end_to_end"]["images_per_s"]
        out.append(_target("CPU end to end, 1080p JPEG", f">= {CPU_IMAGES_PER_S:g} images/s", round(ips, 1),
                           ips >= CPU_IMAGES_PER_S, where))
        ratio = best.get("vs_baseline")
        out.append(_target("CPU speed-up over the naive baseline, 1080p", f">= {CPU_SPEEDUP:g}x",
                           None if ratio is None else round(ratio, 2), None if ratio is None else ratio >= CPU_SPEEDUP,
                           where if ratio is not None else "no baseline in this run"))

    at64 = [r for r in gpu_rows if r["batch"] == GPU_BATCH]
    if not at64 or not _is_paper_model(config):
        why = f"needs a GPU run of deeplabv3_resnet101 at 224² with batch {GPU_BATCH}"
        for name, required in (("GPU speed-up over the naive baseline", f">= {GPU_SPEEDUP:g}x"),
                               ("GPU inference, fraction of FP16 peak", f">= {GPU_FP16_PEAK_FRACTION:.0%}"),
                               ("GPU pre/post share of end to end, 1080p", f"< {GPU_PRE_POST_FRACTION:.0%}")):
            out.append(_target(name, required, detail=why))
    else:
        for kind in dict.fromkeys(r["input"] for r in at64):
            best = _best([r for r in at64 if r["input"] == kind])
            ratio = best.get("vs_baseline")
            out.append(_target(f"GPU speed-up over the naive baseline, {kind}", f">= {GPU_SPEEDUP:g}x",
                               None if ratio is None else round(ratio, 2), None if ratio is None else ratio >= GPU_SPEEDUP,
                               f"{best['backend']} {best['precision']}, batch {GPU_BATCH}"))
        fp16 = [r for r in at64 if r["precision"] == "fp16" and r["limits"].get("fraction_of_peak") is not None]
        if fp16:
            top = max(fp16, key=lambda r: r["limits"]["fraction_of_peak"])
            frac = top["limits"]["fraction_of_peak"]
            out.append(_target("GPU inference, fraction of FP16 peak", f">= {GPU_FP16_PEAK_FRACTION:.0%}", round(frac, 3),
                               frac >= GPU_FP16_PEAK_FRACTION,
                               f"{top['backend']}, {top['limits']['achieved_tflops']:.1f} of {top['limits']['peak_tflops']:g} TFLOP/s"))
        else:
            out.append(_target("GPU inference, fraction of FP16 peak", f">= {GPU_FP16_PEAK_FRACTION:.0%}",
                               detail="no fp16 row with a known device peak at batch 64"))
        best = _best([r for r in at64 if r["input"] == "1080p"])
        if best is not None and best.get("pre_post_fraction") is not None:
            frac = best["pre_post_fraction"]
            out.append(_target("GPU pre/post share of end to end, 1080p", f"< {GPU_PRE_POST_FRACTION:.0%}", round(frac, 3),
                               frac < GPU_PRE_POST_FRACTION,
                               f"{best['backend']} {best['precision']}: (preprocess + upsample) / (decode + preprocess + "
                               "h2d + infer + d2h + upsample), per image, each stage alone"))
        else:
            out.append(_target("GPU pre/post share of end to end, 1080p", f"< {GPU_PRE_POST_FRACTION:.0%}",
                               detail="no 1080p row with stage timings at batch 64"))

    native = [r for r in runs if r.get("analysis") == "native" and r["input"] == "1080p" and r.get("stage_ms_per_image")]
    best = _best(native)
    name, required = "native: tile + stitch share of end to end, 1080p", f"< {NATIVE_TILE_STITCH_FRACTION:.0%}"
    if best is None:
        out.append(_target(name, required, detail="needs a native run with stage timings on 1080p inputs (--analysis native)"))
    else:
        ms = best["stage_ms_per_image"]
        share = ((ms.get("tile") or 0.0) + (ms.get("stitch") or 0.0)) / (1000 / best["end_to_end"]["images_per_s"])
        out.append(_target(name, required, round(share, 3), share < NATIVE_TILE_STITCH_FRACTION,
                           f"{best['backend']} {best['precision']}, batch {best['batch']} tiles: (tile + stitch, each alone, "
                           "per image) / (1 / images per s end to end)"))

    memory = results.get("memory")
    if memory and memory.get("rss"):
        for key, label in (("rss", "resident memory"), ("gpu", "GPU memory")):
            m = memory.get(key)
            if not m:
                continue
            allowed = max(MEMORY_FLAT_MB, MEMORY_FLAT_FRACTION * m["at_warmup_mb"])
            out.append(_target(f"Memory: {label} flat over {memory['images']} images", f"growth <= {allowed:.0f} MB",
                               round(m["growth_mb"], 1), m["growth_mb"] <= allowed,
                               f"{memory['backend']} batch {memory['batch']}, {memory['input']}; "
                               f"{m['at_warmup_mb']:.0f} MB at {memory['warmup_fraction']:.0%} of the run"))
    else:
        out.append(_target("Memory: flat after warm-up", "growth ~ 0", detail="no memory run (--memory-run 0)"))
    return out
