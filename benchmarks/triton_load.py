"""Load test of a Triton server's pipeline model: ``fakelocator bench --triton URL``.

Like perf_analyzer's concurrency mode: for each concurrency level C, C client threads (one
connection each) keep one request in flight apiece until ``requests`` requests have been answered;
it reports throughput (images/s over the level's wall time) and the latency percentiles of the
requests (p50/p95/p99, ms, client-side: send, server queue and compute, receive the response as
arrays; like perf_analyzer, not the client's own conversion of maps to float32). Before the timed requests, every thread sends ``warmup`` untimed ones.

Each level also reads the server's statistics before and after, so it shows what the server did:
the mean batch the pipeline and the network models executed (inferences / executions), and the
mean time requests waited in their queues. Whether the server batches dynamically is the
repository's choice (``fakelocator export triton`` vs ``--no-dynamic-batching``); the report reads
it from the models' configs, so comparing the two is two runs, one per repository.

Inputs: seeded photo-like JPEG frames (``fakelocator.benchmarks.inputs``), or image files given
with ``images``; either way encoded bytes that the server decodes for real.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fakelocator.errors import FakeLocatorError

DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16)
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class LoadConfig:
    """What ``run_load`` measures.

    Args:
        url: the server (``http://host:8000`` or ``grpc://host:8001``).
        model: the pipeline model.
        concurrency: the levels to sweep.
        requests: timed requests per level.
        images_per_request: images in each request.
        warmup: untimed requests per thread before each level.
        kind: the generated input kind (``fakelocator.benchmarks.inputs.KINDS``) when ``images`` is empty.
        images: image files to send instead of generated ones (cycled through).
        pool: distinct generated images.
        maps: ask for the maps (False: scores only, as a platform that stores only verdicts would).
        timeout_s: per request.
        seed: of the generated images.
    """

    url: str
    model: str = "fakelocator"
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    requests: int = 32
    images_per_request: int = 1
    warmup: int = 1
    kind: str = "1080p"
    images: tuple[Path, ...] = ()
    pool: int = 8
    maps: bool = True
    timeout_s: float = 120.0
    seed: int = 0


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    images: int
    seconds: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    errors: int  # images the server answered with an error
    pipeline_batch: float | None  # mean images per pipeline execution in this level
    network_batch: float | None  # mean crops per network execution
    queue_ms: float | None  # mean time a pipeline request waited in its queue


@dataclass
class LoadReport:
    url: str
    model: str
    network: str | None
    dynamic_batching: dict[str, bool]
    inputs: dict
    levels: list[LevelResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "levels"}, "levels": [asdict(r) for r in self.levels]}

    def markdown(self) -> str:
        batching = ", ".join(f"{name} {'on' if on else 'off'}" for name, on in self.dynamic_batching.items())
        lines = [
            f"Triton {self.url}, model {self.model}; dynamic batching: {batching}; inputs: {self.inputs['description']}",
            "",
            "| concurrency | images/s | p50 ms | p95 ms | p99 ms | mean pipeline batch | mean network batch | queue ms | errors |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.levels:
            def f(v, fmt="{:.1f}"):
                return "–" if v is None else fmt.format(v)

            lines.append(f"| {r.concurrency} | {r.images_per_s:.1f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} | {r.p99_ms:.0f} | "
                         f"{f(r.pipeline_batch, '{:.2f}')} | {f(r.network_batch, '{:.2f}')} | {f(r.queue_ms)} | {r.errors} |")
        return "\n".join(lines)


def _inputs(config: LoadConfig) -> tuple[list[bytes], dict]:
    if config.images:
        from fakelocator.runtime.decode import read_file

        blobs = [read_file(p) for p in config.images]
        sizes = [len(b) for b in blobs]
        return blobs, {"description": f"{len(blobs)} files ({np.mean(sizes) / 1e3:.0f} kB on average)",
                       "files": [str(p) for p in config.images]}
    from fakelocator.benchmarks.inputs import make_pool

    pool = make_pool(config.kind, size=config.pool, seed=config.seed)
    info = pool.describe()
    return list(pool.encoded), {**info, "description": f"{config.kind} JPEG {pool.width}x{pool.height} "
                                f"(~{info['mean_bytes'] / 1e3:.0f} kB, {len(pool)} distinct)"}


def _counts(client, model: str) -> tuple[int, int, int, int] | None:
    """(inferences, executions, queued requests, queue ns) of ``model`` so far, from the server's statistics."""
    try:
        stats = client.statistics(model)["model_stats"][0]
    except (FakeLocatorError, KeyError, IndexError):
        return None
    queue = stats.get("inference_stats", {}).get("queue", {})
    return (int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0)),
            int(queue.get("count", 0)), int(queue.get("ns", 0)))


def _batching(config: dict) -> bool:
    return "dynamic_batching" in config


def run_load(config: LoadConfig, *, progress: Callable[[str], None] = lambda m: None) -> LoadReport:
    """Sweep ``config.concurrency`` against the server; see the module docstring."""
    from fakelocator.runtime.triton_client import TritonClient

    if config.requests < 1 or config.images_per_request < 1 or config.warmup < 0 or not config.concurrency:
        raise FakeLocatorError("requests and images per request must be >= 1, warm-up >= 0, and at least one concurrency")
    if any(c < 1 for c in config.concurrency):
        raise FakeLocatorError(f"concurrency levels must be >= 1, got {config.concurrency}")
    blobs, inputs = _inputs(config)
    with TritonClient(config.url, model=config.model, timeout_s=config.timeout_s) as control:
        if not control.ready():
            raise FakeLocatorError(f"Triton {control.endpoint}: model {config.model} is not ready (is `fakelocator serve` running?)")
        pipeline_config = control.config()
        params = {k: v.get("string_value", "") for k, v in pipeline_config.get("parameters", {}).items()}
        network = params.get("fakelocator.network_model") or None
        batching = {config.model: _batching(pipeline_config)}
        if network:
            with TritonClient(config.url, model=network, timeout_s=config.timeout_s) as other:
                batching[network] = _batching(other.config())
        report = LoadReport(str(control.endpoint), config.model, network, batching, inputs)
        progress(f"{report.url}: {inputs['description']}, {config.requests} requests of {config.images_per_request} per level")
        for level in config.concurrency:
            before = {m: _counts(control, m) for m in (config.model, network) if m}
            result = _level(config, blobs, level)
            after = {m: _counts(control, m) for m in (config.model, network) if m}

            def mean_batch(model):
                if not model or before.get(model) is None or after.get(model) is None:
                    return None
                inferences, executions = (a - b for a, b in zip(after[model][:2], before[model][:2]))
                return inferences / executions if executions else None

            if before.get(config.model) and after.get(config.model):
                queued = after[config.model][2] - before[config.model][2]
                result.queue_ms = (after[config.model][3] - before[config.model][3]) / queued / 1e6 if queued else None
            result.pipeline_batch = mean_batch(config.model)
            result.network_batch = mean_batch(network)
            report.levels.append(result)
            progress(f"concurrency {level}: {result.images_per_s:.1f} images/s, p50 {result.p50_ms:.0f} ms, "
                     f"p99 {result.p99_ms:.0f} ms")
    return report


def _level(config: LoadConfig, blobs: Sequence[bytes], concurrency: int) -> LevelResult:
    from fakelocator.runtime.triton_client import TritonClient

    n = config.images_per_request
    lock = threading.Lock()
    next_request = [0]
    latencies: list[float] = []
    errors: list[BaseException] = []
    image_errors = [0]
    ready = threading.Barrier(concurrency + 1)

    def payload(i: int) -> list[bytes]:
        return [blobs[(i * n + k) % len(blobs)] for k in range(n)]

    def worker(w: int) -> None:
        try:
            with TritonClient(config.url, model=config.model, timeout_s=config.timeout_s, max_batch=n) as client:
                for k in range(config.warmup):
                    client.infer(payload(w + k * concurrency), maps=config.maps)
                ready.wait()
                while True:
                    with lock:
                        i = next_request[0]
                        if i >= config.requests:
                            return
                        next_request[0] += 1
                    t0 = time.perf_counter()
                    out = client.infer(payload(i), maps=config.maps)
                    elapsed = (time.perf_counter() - t0) * 1000
                    with lock:
                        latencies.append(elapsed)
                        image_errors[0] += int(sum(len(e) > 0 for e in out["error"].reshape(-1)))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            ready.abort()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0] if isinstance(errors[0], FakeLocatorError) else FakeLocatorError(f"a client failed: {errors[0]}")
    a = np.asarray(latencies)
    p50, p95, p99 = np.percentile(a, PERCENTILES)
    images = config.requests * n
    return LevelResult(concurrency, config.requests, images, seconds, images / seconds, float(p50), float(p95),
                       float(p99), float(a.mean()), image_errors[0], None, None, None)
