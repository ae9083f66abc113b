"""The naive baseline: the paper's research-code path, timed in the same process as the runtime.

One image at a time, as a research evaluation script does it:

1. decode: ``PIL.Image.open(...).convert("RGB")``;
2. preprocess: torchvision ``Resize((h, w))`` on the PIL image (PIL's bilinear, on the CPU),
   ``ToTensor``, ``Normalize(mean, std)``, ``unsqueeze(0)``, ``.to(device)``;
3. infer: the same network in PyTorch eager mode, float32, ``torch.no_grad()``;
4. upsample: ``F.interpolate`` of the map to the image's size (bilinear), ``.cpu().numpy()``.

On a GPU every stage ends with ``torch.cuda.synchronize()`` so that host clocks time finished work.
On the CPU the benchmark runs it twice, with torch's default threads and with one thread, and
compares against the faster: on a machine shared with other work, torch's OpenMP threads can run
ten times slower than one thread (each operator waits for its slowest thread), and a ratio against
that would flatter the runtime.
Its outputs are not compared with the runtime's: PIL's resize antialiases, the contract does not
(that difference is the point of the contract, not of this benchmark).
"""

from __future__ import annotations

import io
import time
from typing import Callable

from fakelocator.benchmarks.inputs import InputPool
from fakelocator.benchmarks.stats import summarize, throughput

BASELINE_STAGES = ("decode", "preprocess", "infer", "upsample")
Clock = Callable[[], float]


def unavailable_reason() -> str | None:
    """Why the baseline cannot run here (torch, torchvision or Pillow missing), or None."""
    import importlib.util

    for module, extra in (("torch", "train"), ("torchvision", "train"), ("PIL", "train")):
        if importlib.util.find_spec(module) is None:
            return (f"{module} is not installed (pip install 'fakelocator[{extra}]'): "
                    "the naive PyTorch baseline and the speed-up ratio are skipped")
    return None


def run_baseline(
    model, pool: InputPool, *, device: str, images: int, warmup: int, threads: int | None = None, clock: Clock = time.perf_counter
) -> dict:
    """Time ``images`` images of ``pool`` (after ``warmup`` untimed ones) through the naive path.

    Args:
        model: a ``FakeLocatorNet`` (its ``config.preprocessing`` gives size, mean and std).
        device: "cpu" or "cuda[:N]".
        threads: torch's CPU threads for this run (restored after); None keeps torch's default.
    Returns:
        {"latency": Summary of per-image ms, "images_per_s", "stages": {stage: Summary}, ...}.
    """
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        result = _run(model, pool, device=device, images=images, warmup=warmup, clock=clock)
    finally:
        torch.set_num_threads(before)
    result["torch_threads"] = threads or before
    return result


def _run(model, pool: InputPool, *, device: str, images: int, warmup: int, clock: Clock) -> dict:
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms

    dev = torch.device(device)
    model = model.to(dev).float().eval()
    contract = model.config.preprocessing
    transform = transforms.Compose([
        transforms.Resize(contract.size),
        transforms.ToTensor(),
        transforms.Normalize(contract.mean, contract.std),
    ])
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def one(data: bytes) -> dict[str, float]:
        t = [clock()]
        image = Image.open(io.BytesIO(data)).convert("RGB")
        t.append(clock())
        x = transform(image).unsqueeze(0).to(dev)  # (1, 3, h, w) RGB
        if contract.color_order == "BGR":
            x = x[:, [2, 1, 0]]
        sync()
        t.append(clock())
        out = model(x)
        sync()
        t.append(clock())
        full = F.interpolate(out["map"], size=(image.height, image.width), mode="bilinear", align_corners=False)
        full.squeeze().cpu().numpy()  # (H, W)
        t.append(clock())
        return {s: (b - a) * 1000 for s, a, b in zip(BASELINE_STAGES, t, t[1:])}

    with torch.no_grad():
        for i in range(warmup):
            one(pool.item(i))
        per_image = []
        cpu_start, start = time.process_time(), clock()
        for i in range(images):
            per_image.append(one(pool.item(warmup + i)))
        seconds, cpu_seconds = clock() - start, time.process_time() - cpu_start
    total = [sum(row.values()) for row in per_image]
    return {
        "path": "PIL decode, torchvision Resize/ToTensor/Normalize (CPU), PyTorch eager fp32, batch 1, F.interpolate",
        "device": str(dev),
        "images": images,
        "warmup": warmup,
        "seconds": seconds,
        "images_per_s": throughput(images, seconds),
        "cpu_ms_per_image": cpu_seconds * 1000 / images,
        "latency": summarize(total).to_dict(),
        "stages": {s: summarize([row[s] for row in per_image]).to_dict() for s in BASELINE_STAGES},
    }
