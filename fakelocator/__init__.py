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
