"""FakeLocator: full-resolution localization of GAN face manipulations.

The package is split by what each part does:

- ``fakelocator.training``: the model, data, losses, synthesis and the trainer (needs torch);
- ``fakelocator.export``: ONNX export, FP16 conversion, TensorRT engines, Triton repositories;
- ``fakelocator.runtime``: torch-free batched inference and the ``trt-locate`` CLI;
- ``fakelocator.evaluation``: the paper's metrics and robustness protocol;
- ``fakelocator.benchmarks``: latency and throughput measurements.

``fakelocator.contract`` holds the one preprocessing contract that training, export and serving share.
Importing this package imports nothing heavy.
"""

__version__ = "0.1.0"

import os as _os

# ONNX Runtime (>= 1.2x, Linux wheels) records usage telemetry and writes a device id and an event
# database under $HOME/.cache/Microsoft/DeveloperTools/.onnxruntime when it is imported. A tool that
# runs on other people's uploads should neither report on them nor write outside its output folder,
# so it is off unless the caller set ORT_DISABLE_TELEMETRY themselves (it must be set before
# onnxruntime is imported; importing fakelocator first is enough). See docs/runtime.md.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
