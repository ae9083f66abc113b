"""What the hardware can do: datasheet peaks of known GPUs, and ceilings measured on this machine.

- ``PEAKS``: dense (no structured sparsity) FP16 tensor-core and FP32 TFLOP/s from NVIDIA's data
  sheets, looked up by the device name. They are leads, not promises: clocks, power limits and
  cooling decide what a given card reaches, so a measured matrix-product ceiling is reported
  beside them whenever torch can run one.
- ``host_copy_bandwidth``: a large numpy copy (bytes read + bytes written), the ceiling for the
  pre/post-processing the runtime does on the CPU.
- ``device_copy_bandwidth``: a large device-to-device copy on the GPU (read + written).
- ``matmul_ceiling``: a large matrix product, fp16 and fp32, through torch on the GPU; float32
  through numpy (BLAS) on the CPU.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Peak:
    """Datasheet throughput of one GPU model, dense, in TFLOP/s."""

    name: str
    fp16_tflops: float  # tensor cores, FP16 inputs (FP32 accumulation where the sheet distinguishes)
    fp32_tflops: float  # CUDA cores, no TF32
    source: str


# Matched in order against the words of the device name (split at anything not a letter or digit,
# lower-cased: "NVIDIA H100 80GB HBM3" -> nvidia, h100, 80gb, hbm3): the first entry whose keywords
# are all among them wins, so specific variants come before the generic one. GeForce cards have
# twice the listed FP16 rate with FP16 accumulation; the listed one is with FP32 accumulation.
PEAKS: tuple[tuple[tuple[str, ...], Peak], ...] = (
    (("h100", "pcie"), Peak("H100 PCIe", 756.0, 51.2, "NVIDIA H100 datasheet (1513 sparse / 2)")),
    (("h100", "nvl"), Peak("H100 NVL", 835.5, 60.0, "NVIDIA H100 NVL datasheet (1671 sparse / 2)")),
    (("h100",), Peak("H100 SXM5", 989.4, 66.9, "NVIDIA H100 datasheet (1979 sparse / 2)")),
    (("h200", "nvl"), Peak("H200 NVL", 835.5, 60.0, "NVIDIA H200 datasheet (1671 sparse / 2)")),
    (("h200",), Peak("H200 SXM", 989.4, 66.9, "NVIDIA H200 datasheet (1979 sparse / 2)")),
    (("gh200",), Peak("GH200", 989.4, 66.9, "NVIDIA GH200 datasheet (1979 sparse / 2)")),
    (("a100",), Peak("A100", 312.0, 19.5, "NVIDIA A100 datasheet")),
    (("a10",), Peak("A10", 125.0, 31.2, "NVIDIA A10 datasheet (250 sparse / 2)")),
    (("l40s",), Peak("L40S", 362.1, 91.6, "NVIDIA L40S datasheet (733 sparse / 2)")),
    (("l40",), Peak("L40", 181.0, 90.5, "NVIDIA L40 datasheet (362 sparse / 2)")),
    (("l4",), Peak("L4", 121.0, 30.3, "NVIDIA L4 datasheet (242 sparse / 2)")),
    (("t4",), Peak("T4", 65.0, 8.1, "NVIDIA T4 datasheet")),
    (("v100", "pcie"), Peak("V100 PCIe", 112.0, 14.0, "NVIDIA V100 datasheet")),
    (("v100",), Peak("V100 SXM2", 125.0, 15.7, "NVIDIA V100 datasheet")),
    (("rtx", "4090"), Peak("GeForce RTX 4090", 165.2, 82.6, "NVIDIA Ada GPU architecture whitepaper")),
    (("rtx", "3090"), Peak("GeForce RTX 3090", 71.0, 35.6, "NVIDIA Ampere GA102 GPU architecture whitepaper")),
    (("rtx", "3080"), Peak("GeForce RTX 3080", 59.5, 29.8, "NVIDIA Ampere GA102 GPU architecture whitepaper")),
)


def lookup_peak(device_name: str | None) -> Peak | None:
    """The datasheet peak for a GPU name, or None for an unknown device (and for the CPU)."""
    if not device_name:
        return None
    words = set(re.split(r"[^a-z0-9]+", device_name.lower()))
    for keywords, peak in PEAKS:
        if all(k in words for k in keywords):
            return peak
    return None


def peak_dict(peak: Peak | None) -> dict | None:
    return None if peak is None else asdict(peak)


def host_copy_bandwidth(nbytes: int = 256 << 20, repeats: int = 5) -> dict:
    """GB/s of a large numpy copy, counting bytes read plus bytes written (median of ``repeats``)."""
    src = np.ones(nbytes, np.uint8)  # ones, not zeros: zero pages can be mapped lazily
    dst = np.empty_like(src)
    np.copyto(dst, src)  # first touch
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return {"what": "numpy copy, read + write", "bytes": nbytes, "seconds": seconds, "gb_per_s": 2 * nbytes / seconds / 1e9}


def device_copy_bandwidth(device: str, nbytes: int = 1 << 30, repeats: int = 10) -> dict | None:
    """GB/s of a device-to-device copy (read + write) timed with CUDA events; None without torch CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device(device)
    src = torch.ones(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    seconds = statistics.median(times)
    del src, dst
    torch.cuda.empty_cache()
    return {"what": "torch device-to-device copy, read + write, CUDA events", "bytes": nbytes, "seconds": seconds,
            "gb_per_s": 2 * nbytes / seconds / 1e9}


def matmul_ceiling(device: str, *, n: int | None = None, repeats: int = 10) -> dict:
    """TFLOP/s of an n × n × n matrix product: fp16 and fp32 on a GPU (torch), float32 on the CPU (numpy).

    Inputs are random normal values, not zeros (zeros can run faster than real data).
    """
    if device.startswith("cuda"):
        try:
            import torch
        except ImportError:
            return {"skipped": "torch is not installed: no measured GPU ceiling"}
        if not torch.cuda.is_available():
            return {"skipped": "torch sees no CUDA device"}
        n = n or 8192
        dev = torch.device(device)
        out = {"what": f"torch.matmul {n}x{n}x{n}, CUDA events, median of {repeats}", "n": n}
        gen = torch.Generator(device=dev).manual_seed(0)
        for name, dtype in (("fp16", torch.float16), ("fp32", torch.float32)):
            a = torch.randn((n, n), device=dev, dtype=dtype, generator=gen)
            b = torch.randn((n, n), device=dev, dtype=dtype, generator=gen)
            allow_tf32 = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 row is true fp32, as the datasheet's
            try:
                for _ in range(3):
                    torch.matmul(a, b)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                times = []
                for _ in range(repeats):
                    start.record()
                    torch.matmul(a, b)
                    end.record()
                    end.synchronize()
                    times.append(start.elapsed_time(end) / 1000)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = allow_tf32
            out[f"{name}_tflops"] = 2 * n**3 / statistics.median(times) / 1e12
            del a, b
        torch.cuda.empty_cache()
        return out
    n = n or 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return {"what": f"numpy float32 matmul {n}x{n}x{n} (its BLAS, all threads), median of {repeats}", "n": n,
            "fp32_tflops": 2 * n**3 / statistics.median(times) / 1e12}
