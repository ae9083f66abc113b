"""Mixed-precision ONNX: fp16 weights and activations, fp32 inputs and outputs.

This is what an FP16 TensorRT engine is built from. TensorRT 11 builds strongly typed networks only
(and 10.12 deprecated the FP16 builder flag): the tensor types of the ONNX file decide the engine's
precision, so an FP16 engine needs an ONNX whose tensors already are fp16.

``onnxconverter-common``'s ``convert_float_to_float16(keep_io_types=True)`` does the conversion. Ops
in its default block list stay fp32 with casts around them, among them ``Resize`` (the decoder's
bilinear upsampling: its coordinate arithmetic is what the preprocessing contract pins down) and
``Range``/``Min``/``Max``. Measured on a trained model (docs/export.md), keeping the final
``Sigmoid`` or the feature ``ReduceMean`` in fp32 as well changed nothing beyond noise, so they are
not blocked.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import PREPROCESSING_KEY, ModelMetadata, props_of, write_metadata
from fakelocator.export.onnx_file import save_single_file

log = logging.getLogger(__name__)

#: Op types kept in fp32 in addition to onnxconverter-common's default block list.
EXTRA_FP32_OPS: tuple[str, ...] = ()


def fp32_ops() -> list[str]:
    """Every op type the conversion keeps in fp32."""
    from onnxconverter_common import float16

    return sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(EXTRA_FP32_OPS))


def is_fp16(model) -> bool:
    """Whether an ``onnx.ModelProto`` holds fp16 initializers (i.e. was converted)."""
    import onnx

    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def convert_model_to_fp16(model, *, keep_fp32_nodes: list[str] | None = None):
    """Convert an fp32 ``onnx.ModelProto`` to mixed precision; returns a new model.

    Inputs and outputs stay fp32, so the runtime feeds and reads the same arrays for either
    precision. The fakelocator metadata is carried over with ``fakelocator.precision = fp16``.
    """
    from onnxconverter_common import float16

    if is_fp16(model):
        raise FakeLocatorError("the model already holds fp16 tensors; convert its fp32 export instead")
    props = props_of(model)
    model = _separate_consumed_outputs(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=fp32_ops(),
            node_block_list=list(keep_fp32_nodes or []),
        )
    # the converter warns once per weight below fp16's smallest normal that it rounds to ±1e-7;
    # one line says how many (usually a handful of near-zero weights, harmless)
    truncated = sum("will be truncated" in str(w.message) for w in caught)
    if truncated:
        log.info("fp16: %d weights smaller than fp16 can hold were set to ±1e-7", truncated)
    for w in caught:
        if "will be truncated" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if PREPROCESSING_KEY in props:  # a fakelocator export; other models get no fakelocator keys
        write_metadata(converted, ModelMetadata.from_props(props, source="model").with_precision("fp16"))
    return converted


def _separate_consumed_outputs(model):
    """A copy of ``model`` where no graph output also feeds another node.

    With ``keep_io_types`` the converter casts each graph output back to fp32 at the end, but a
    node that reads the same tensor inside the graph keeps reading the fp32 name next to fp16
    inputs (seen: ``features``, a ReduceMean the exporter shares with the classifier's Concat →
    "Concat: inputs has inconsistent type"). An Identity between the producer and the output makes
    the output a tensor of its own.
    """
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    outputs = {o.name for o in graph.output}
    consumed = {i for n in graph.node for i in n.input} & outputs
    for name in sorted(consumed):
        inner = f"{name}__inner"
        for node in graph.node:
            node.output[:] = [inner if o == name else o for o in node.output]
            node.input[:] = [inner if i == name else i for i in node.input]
        graph.node.append(onnx.helper.make_node("Identity", [inner], [name], name=f"{name}__output"))
    return model


def convert_file_to_fp16(src: str | Path, dst: str | Path, *, check: bool = True) -> Path:
    """Convert the ONNX file ``src`` to a mixed-precision single file ``dst``."""
    import onnx

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FakeLocatorError(f"model {src}: no such file")
    model = onnx.load(str(src))
    converted = convert_model_to_fp16(model)
    save_single_file(converted, dst)
    if check:
        onnx.checker.check_model(str(dst), full_check=True)
    return dst
