"""Test doubles and builders shared by the test folders (importable as ``helpers``: pytest puts
``tests/`` on ``sys.path``, see ``pythonpath`` in pyproject.toml).

- ``fake_cuda``: the one fake CUDA device (``FakeDevice``) standing in for ``fakelocator.runtime.cuda``;
- ``fake_tensorrt``: the one fake ``tensorrt`` module, its engines running on the fake device;
- ``models``: hand-made ONNX models of the exported contract (the red and the mean model);
- ``native_build``: building the native library under test.
"""
