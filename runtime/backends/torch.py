"""The PyTorch backend: runs a checkpoint (``.pt`` training checkpoint or ``.safetensors`` weights) directly.

Optional: it needs torch (``pip install 'fakelocator[train]'``), imported only when this backend
loads. On the CPU it runs the network in float32. On a GPU it runs it in float16 with channels-last
memory and replays one CUDA graph captured for a ``batch_size`` input, so a batch costs one launch;
smaller batches are padded into the graph's static input.

Options: ``fp16`` (default: True on GPU), ``channels_last`` (default: True on GPU), ``cuda_graphs``
(default: True on GPU; none of these three apply on the CPU), ``threads`` (CPU threads, 0 =
torch's default; it sets torch's process-wide thread count).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.limits import check_threads
from fakelocator.runtime.backends.base import Backend, ModelInfo

FORMATS = ("checkpoint",)


def available() -> tuple[bool, str]:
    if importlib.util.find_spec("torch") is None:
        return False, "torch is not installed: pip install 'fakelocator[train]'"
    return True, ""


def load(
    model: str,
    *,
    device: str = "auto",
    batch_size: int = 8,
    fp16: bool | None = None,
    channels_last: bool | None = None,
    cuda_graphs: bool | None = None,
    threads: int = 0,
    **options,
) -> "TorchBackend":
    if options:
        raise FakeLocatorError(
            f"torch backend: unknown options {sorted(options)}; it takes fp16, channels_last, cuda_graphs, threads"
        )
    check_threads("threads", threads, allow_zero=True)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return TorchBackend(
        model, device=device, batch_size=batch_size, fp16=fp16, channels_last=channels_last, cuda_graphs=cuda_graphs
    )


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        path: str,
        *,
        device: str = "auto",
        batch_size: int = 8,
        fp16: bool | None = None,
        channels_last: bool | None = None,
        cuda_graphs: bool | None = None,
        net=None,
    ):
        """``net``: a ``FakeLocatorNet`` already in memory (export's parity check) instead of loading ``path``."""
        import torch

        from fakelocator.training.checkpoint import load_model

        if device == "auto":
            device = "cuda:0" if torch.cuda.is_available() else "cpu"
        if device != "cpu" and not device.startswith("cuda"):
            raise FakeLocatorError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise FakeLocatorError(f"device {device}: torch sees no CUDA GPU; use device cpu")
        self._torch = torch
        self._device = torch.device(device)
        self.device = "cpu" if self._device.type == "cpu" else f"cuda:{self._device.index or 0}"
        gpu = self._device.type == "cuda"
        self.fp16 = gpu if fp16 is None else bool(fp16)
        self.channels_last = gpu if channels_last is None else bool(channels_last)
        use_graphs = gpu if cuda_graphs is None else bool(cuda_graphs)
        if use_graphs and not gpu:
            raise FakeLocatorError("cuda_graphs needs a CUDA device")

        if net is None:
            net, provenance = load_model(path, map_location=self._device)
        else:
            net, provenance = net.to(self._device), {}
        self._dtype = torch.float16 if self.fp16 else torch.float32
        net = net.to(dtype=self._dtype)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.eval()
        self.info = ModelInfo(
            path=path,
            format="checkpoint",
            preprocessing=net.config.preprocessing,
            config=net.config.to_dict(),
            provenance=provenance,
            version=str(provenance.get("version", __version__)),
            precision="fp16" if self.fp16 else "fp32",
        )
        self._graph = None
        if use_graphs:
            self._capture(batch_size)

    def _forward(self, x):
        out = self.net(x)
        return {"map": out["map"], "score": out["score"], "features": out["features"]}

    def _capture(self, batch_size: int) -> None:
        """Warm up on a side stream, then record one forward pass on a (batch_size, 3, h, w) static input."""
        torch = self._torch
        h, w = self.info.preprocessing.size
        self._static_in = torch.zeros((batch_size, 3, h, w), device=self._device, dtype=self._dtype)
        if self.channels_last:
            self._static_in = self._static_in.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            side = torch.cuda.Stream(self._device)
            side.wait_stream(torch.cuda.current_stream(self._device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    self._forward(self._static_in)
            torch.cuda.current_stream(self._device).wait_stream(side)
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._static_out = self._forward(self._static_in)
        self.max_batch = batch_size

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        n = batch.shape[0]
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device, non_blocking=True)
            out = self.run_on_device(x, n)
            return {k: v.float().cpu().numpy() for k, v in out.items()}

    def run_on_device(self, x, n: int) -> dict:
        """The network on an uploaded float32 batch ``x`` of ``n`` rows: CUDA-graph replay or the
        forward pass in the backend's dtype and memory format; outputs stay on the device."""
        torch = self._torch
        if self._graph is not None:
            if n > self._static_in.shape[0]:
                raise FakeLocatorError(f"torch backend: batch {n} exceeds the captured batch {self._static_in.shape[0]}")
            self._static_in[:n].copy_(x)
            self._graph.replay()
            return {k: v[:n] for k, v in self._static_out.items()}
        x = x.to(self._dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward(x)

    def close(self) -> None:
        self._graph = None
        self.net = None
