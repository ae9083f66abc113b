"""Count a model's floating-point operations per image, from the ONNX graph (no torch needed).

Counted: the multiply-accumulates of ``Conv``, ``ConvTranspose``, ``Gemm`` and ``MatMul``, two
FLOPs each (a multiply and an add), without bias additions. Elementwise operations, pooling,
normalization and ``Resize`` are not counted: they are a small fraction of the arithmetic and are
bound by memory, not by the matrix units whose peak the count is compared with. This is the
convention of ``torch.utils.flop_counter.FlopCounterMode`` (convolution, mm, addmm, bmm, matmul),
and ``tests/benchmarks`` checks that both give the same number on a real network.

Shapes come from ONNX shape inference on a copy of the graph whose batch axis is set to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass at batch 1 (one image)."""

    total: int
    by_op: dict[str, int]
    nodes: int  # nodes counted
    unresolved: list[str] = field(default_factory=list)  # nodes of a counted type whose shapes stayed unknown

    @property
    def complete(self) -> bool:
        return not self.unresolved

    def to_dict(self) -> dict:
        return {"flops_per_image": self.total, "gflops_per_image": self.total / 1e9, "by_op": self.by_op,
                "nodes": self.nodes, "unresolved": self.unresolved, "complete": self.complete,
                "counted_ops": list(COUNTED_OPS), "convention": "2 FLOPs per multiply-accumulate, no bias"}


def _dims(value_info) -> tuple[int, ...] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _batch_one(model):
    """A copy of ``model`` with every graph input's first axis set to 1 and the stale shapes dropped."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    initializers = {t.name for t in m.graph.initializer}
    for value in m.graph.input:
        if value.name in initializers:
            continue
        shape = value.type.tensor_type.shape
        if len(shape.dim):
            shape.dim[0].Clear()
            shape.dim[0].dim_value = 1
    del m.graph.value_info[:]
    for value in m.graph.output:
        value.type.tensor_type.ClearField("shape")
    return m


def _attr(node, name: str, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def node_flops(node, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """FLOPs of one counted node, or None when a shape it needs is unknown."""
    op = node.op_type
    if op in ("Conv", "ConvTranspose"):
        x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
        y = shapes.get(node.output[0])
        if x is None or w is None or (op == "Conv" and y is None):
            return None
        # Conv: every output element of every output channel takes (C_in / group) · k MACs, and
        # prod(w.shape) = C_out · (C_in / group) · k. ConvTranspose scatters every input element
        # into (C_out / group) · k outputs, and prod(w.shape) = C_in · (C_out / group) · k.
        spatial = y[2:] if op == "Conv" else x[2:]
        return 2 * x[0] * int(np.prod(spatial, dtype=np.int64)) * int(np.prod(w, dtype=np.int64))
    if op == "Gemm":
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        if a is None or b is None or len(a) != 2 or len(b) != 2:
            return None
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else a
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return 2 * m * n * k
    if op == "MatMul":
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        if a is None or b is None:
            return None
        a2 = (1,) + a if len(a) == 1 else a  # numpy matmul rules for 1-D operands
        b2 = b + (1,) if len(b) == 1 else b
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
        return 2 * int(np.prod(batch, dtype=np.int64)) * a2[-2] * b2[-1] * a2[-1]
    raise ValueError(f"{op} is not a counted operator")


def count_onnx_flops(model_or_path) -> FlopCount:
    """FLOPs per image of an ONNX model (a path or a loaded ``ModelProto``)."""
    try:
        import onnx
    except ImportError:
        raise FakeLocatorError("counting FLOPs from an ONNX file needs the onnx package: pip install onnx") from None

    model = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    if model.functions:  # local functions (some exporters emit them): count their bodies where they are called
        from onnx import inliner

        model = inliner.inline_local_functions(model)
    inferred = onnx.shape_inference.infer_shapes(_batch_one(model), strict_mode=False, data_prop=True)
    g = inferred.graph
    shapes: dict[str, tuple[int, ...]] = {t.name: tuple(int(d) for d in t.dims) for t in g.initializer}
    for value in [*g.input, *g.value_info, *g.output]:
        dims = _dims(value)
        if dims is not None:
            shapes.setdefault(value.name, dims)

    by_op: dict[str, int] = {}
    unresolved, counted = [], 0
    for node in g.node:
        if node.op_type not in COUNTED_OPS or node.domain not in ("", "ai.onnx"):
            continue
        flops = node_flops(node, shapes)
        if flops is None:
            unresolved.append(f"{node.name or '(unnamed)'} ({node.op_type})")
            continue
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
        counted += 1
    return FlopCount(total=sum(by_op.values()), by_op=by_op, nodes=counted, unresolved=unresolved)


def count_torch_flops(model, input_shape: tuple[int, ...]) -> int:
    """FLOPs of ``model`` on a zero input of ``input_shape`` (batch included), by torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters())
    x = torch.zeros(input_shape, dtype=param.dtype, device=param.device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())
