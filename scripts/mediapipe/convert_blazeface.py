"""Convert MediaPipe's BlazeFace face detectors (.tflite) to ONNX, once, for the runtime to ship.

Run in a side virtualenv that has mediapipe 0.10.14 (it ships the .tflite files) and the small
flatbuffer reader ``tflite``; the project's own environment never installs mediapipe (it pins
protobuf < 5 and brings jax and opencv-contrib-python):

    python3 -m venv /work/venvs/mp
    /work/venvs/mp/bin/pip install mediapipe==0.10.14 tflite==2.18.0 onnx==1.17.0 onnxruntime ai-edge-litert 'protobuf>=4.25.3,<5'
    /work/venvs/mp/bin/python scripts/mediapipe/convert_blazeface.py --out fakelocator/weights/faces

Why our own converter (reading the flatbuffer with ``tflite`` and writing nodes with
``onnx.helper``) and not tflite2onnx or tf2onnx: the full-range model stores 46 of its weight
tensors *sparse* (CSR, with a DENSIFY op) and in fp16 (DEQUANTIZE ops). tflite2onnx handles neither
and is unmaintained; tf2onnx needs TensorFlow (a 500 MB install that pins its own protobuf). The two
graphs use only ten op types; constant-folding DENSIFY/DEQUANTIZE offline gives plain fp32 weights,
and the rest maps one-to-one onto ONNX ops. Activations run in NCHW (ONNX's layout, what TensorRT
and the CUDA provider want): the input is NCHW, weights are transposed once here, and the only
transposes left are before the two output reshapes.

The ONNX models take ``input`` float32 (N, 3, S, S) RGB in [-1, 1] (S = 128 short range, 192
full range; any batch size) and give ``boxes`` (N, A, 16) raw anchor offsets and ``scores``
(N, A, 1) logits (A = 896 or 2304); decoding is ``fakelocator.runtime.blazeface``. Each model is
checked with ``onnx.checker``, against the TFLite interpreter (``ai-edge-litert``) on random
inputs (largest absolute difference printed; 6.5e-5 on outputs up to 138 when this was written),
and its batch of 3 against three batches of 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

#: output file stem: (.tflite inside mediapipe/modules, {ONNX output name: TFLite output name}).
DETECTORS = {
    "blazeface_short_range": ("face_detection/face_detection_short_range.tflite",
                              {"boxes": "regressors", "scores": "classificators"}),
    "blazeface_full_range": ("face_detection/face_detection_full_range_sparse.tflite",
                             {"boxes": "Identity", "scores": "Identity_1"}),
}
#: Training-only models (the mesh face parser, fakelocator.training.attention.mesh).
PARSERS = {
    "face_landmark": ("face_landmark/face_landmark.tflite", {"landmarks": "conv2d_21", "face_flag": "conv2d_31"}),
    "selfie_segmentation": ("selfie_segmentation/selfie_segmentation.tflite", {"mask": "activation_10"}),
}
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def mediapipe_modules() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    if spec is None:
        raise SystemExit("mediapipe is not installed in this environment (see this script's docstring)")
    return Path(next(iter(spec.submodule_search_locations))) / "modules"


def _union(table, cls):
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def densify(tensor, values: np.ndarray) -> np.ndarray:
    """A sparse TFLite constant (per-dimension DENSE or CSR metadata, no blocks) as a dense array."""
    import tflite

    sparsity = tensor.Sparsity()
    shape = tuple(int(v) for v in tensor.ShapeAsNumpy())
    order = sparsity.TraversalOrderAsNumpy()
    if sparsity.BlockMapLength() or list(order) != list(range(len(shape))):
        raise SystemExit(f"{tensor.Name().decode()}: block-sparse or reordered tensors are not supported")
    vector = {tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
              tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
              tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector}
    levels = []
    for d in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(d)
        if meta.Format() == tflite.DimensionType.DENSE:
            levels.append(("dense", int(meta.DenseSize()), None, None))
        else:
            seg = _union(meta.ArraySegments(), vector[meta.ArraySegmentsType()]).ValuesAsNumpy().astype(np.int64)
            idx = _union(meta.ArrayIndices(), vector[meta.ArrayIndicesType()]).ValuesAsNumpy().astype(np.int64)
            levels.append(("csr", 0, seg, idx))
    dense = np.zeros(shape, values.dtype)
    # Walk the levels breadth-first: `parents` are the flat positions in the traversal so far,
    # `coords` the dense coordinates they stand for; a CSR level expands each parent by its segment.
    parents = np.zeros(1, np.int64)
    coords = np.zeros((1, 0), np.int64)
    for kind, size, seg, idx in levels:
        if kind == "dense":
            parents = (parents[:, None] * size + np.arange(size)).reshape(-1)
            coords = np.concatenate([np.repeat(coords, size, 0), np.tile(np.arange(size), len(coords))[:, None]], 1)
        else:
            counts = seg[parents + 1] - seg[parents]
            children = np.concatenate([np.arange(seg[p], seg[p + 1]) for p in parents]) if len(parents) else parents
            coords = np.concatenate([np.repeat(coords, counts, 0), idx[children][:, None]], 1)
            parents = children
    if len(coords) != values.size:
        raise SystemExit(f"{tensor.Name().decode()}: {values.size} stored values for {len(coords)} positions")
    dense[tuple(coords.T)] = values
    return dense


class Converter:
    """One TFLite subgraph → one ONNX graph (see the module docstring for the layout)."""

    def __init__(self, buf: bytes, output_names: dict[str, str]):
        import tflite

        self.tflite = tflite
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        self.graph = self.model.Subgraphs(0)
        self.ops_by_code = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.output_names = output_names
        self.consts: dict[int, np.ndarray] = {}
        self.nodes: list = []
        self.initializers: list = []
        self.layout: dict[int, str] = {}  # activation tensor → "nchw" (4-D, transposed) or "plain"

    # -- tensors
    def tensor(self, i: int):
        return self.graph.Tensors(i)

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(int(v) for v in self.tensor(i).ShapeAsNumpy())

    def name(self, i: int) -> str:
        return f"t{i}"

    def buffer(self, i: int) -> np.ndarray | None:
        t = self.tensor(i)
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        dtype = {self.tflite.TensorType.FLOAT32: np.float32, self.tflite.TensorType.FLOAT16: np.float16,
                 self.tflite.TensorType.INT32: np.int32}[t.Type()]
        values = data.view(dtype)
        if t.Sparsity() is not None:
            return values  # densified by the DENSIFY op
        return values.reshape(self.shape(i))

    def const(self, i: int) -> np.ndarray | None:
        if i not in self.consts:
            value = self.buffer(i)
            if value is None:
                return None
            self.consts[i] = value
        return self.consts[i]

    def add_init(self, name: str, value: np.ndarray) -> str:
        """A constant; float weights that are exactly float16 (all of MediaPipe's are stored so)
        are stored as float16 and cast once at load (ONNX Runtime folds the Cast): half the file."""
        from onnx import TensorProto, numpy_helper

        value = np.ascontiguousarray(value)
        if value.dtype == np.float32 and value.size > 16 and np.array_equal(value.astype(np.float16).astype(np.float32), value):
            self.initializers.append(numpy_helper.from_array(value.astype(np.float16), name + "_f16"))
            self.node("Cast", [name + "_f16"], name, to=TensorProto.FLOAT)
            return name
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{len(self.nodes)}", **attrs))
        return output

    def activation(self, fused: int, out: str) -> str:
        act = self.tflite.ActivationFunctionType
        if fused == act.NONE:
            return out
        pre = out + "_pre"
        self.nodes[-1].output[0] = pre
        if fused == act.RELU:
            return self.node("Relu", [pre], out)
        if fused == act.RELU6:
            return self.node("Clip", [pre, self.add_init(out + "_lo", np.float32(0)), self.add_init(out + "_hi", np.float32(6))], out)
        raise SystemExit(f"fused activation {fused} is not supported")

    @staticmethod
    def same_pads(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], dilation=(1, 1)) -> list[int]:
        """TensorFlow's SAME padding as explicit ONNX pads [top, left, bottom, right] (the extra pixel goes last)."""
        begin, end = [], []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            eff = (k - 1) * d + 1
            total = max((-(-n // s) - 1) * s + eff - n, 0)
            begin.append(total // 2)
            end.append(total - total // 2)
        return begin + end

    # -- ops
    def convert(self):
        import onnx
        from onnx import TensorProto, helper

        g = self.graph
        (inp,) = g.InputsAsNumpy()
        _, height, width, channels = self.shape(inp)
        self.layout[inp] = "nchw"
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = self.ops_by_code[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins, (out,) = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
            if kind == "CUSTOM":
                self.op_custom(op, ins, out, code.CustomCode().decode())
            else:
                getattr(self, "op_" + kind.lower())(op, ins, out)
        outputs = []
        for onnx_name, tfl_name in self.output_names.items():
            (i,) = [o for o in g.OutputsAsNumpy() if self.tensor(o).Name().decode() == tfl_name]
            shape = self.shape(i)
            if self.layout.get(i) == "nchw" and shape[1:3] == (1, 1):  # (N, 1, 1, C): a vector per image
                self.node("Reshape", [self.name(i), self.add_init(onnx_name + "_shape", np.array([0, -1], np.int64))], onnx_name)
                shape = (shape[0], shape[3])
            elif self.layout.get(i) == "nchw":  # an image stays NCHW
                self.node("Identity", [self.name(i)], onnx_name)
                shape = (shape[0], shape[3], shape[1], shape[2])
            else:
                self.node("Identity", [self.name(i)], onnx_name)
            outputs.append(helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, ["N", *shape[1:]]))
        graph = helper.make_graph(
            self.nodes, "blazeface",
            [helper.make_tensor_value_info(self.name(inp), TensorProto.FLOAT, ["N", channels, height, width])],
            outputs, self.initializers,
        )
        graph.input[0].name = "input"
        for n in graph.node:
            n.input[:] = ["input" if x == self.name(inp) else x for x in n.input]
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fakelocator-convert-blazeface")
        model.ir_version = 8  # readable by every onnxruntime >= 1.10 and TensorRT 8.6+
        onnx.checker.check_model(model, full_check=True)
        return model

    def op_dequantize(self, op, ins, out):
        self.consts[out] = self.const(ins[0]).astype(np.float32).reshape(self.shape(out))

    def op_densify(self, op, ins, out):
        self.consts[out] = densify(self.tensor(ins[0]), self.const(ins[0]))

    def _input(self, i: int, nchw: bool = True) -> str:
        if self.const(i) is not None:  # a constant operand of an elementwise op: broadcast in NCHW
            value = self.consts[i].astype(np.float32) if self.consts[i].dtype == np.float16 else self.consts[i]
            if nchw and value.ndim == 4:
                value = value.transpose(0, 3, 1, 2)
            elif nchw and value.ndim in (1, 3) and value.size > 1:  # (C,) or (1, 1, C): per channel
                value = value.reshape(-1, 1, 1)
            return self.add_init(self.name(i) + "_c", value)
        return self.name(i)

    def op_conv_2d(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.Conv2DOptions)
        w = self.const(ins[1]).transpose(0, 3, 1, 2)  # OHWI → OIHW
        self._conv(ins, out, w, o, group=1)

    def op_depthwise_conv_2d(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.DepthwiseConv2DOptions)
        w = self.const(ins[1]).transpose(3, 0, 1, 2)  # 1HW(C·m) → (C·m)1HW
        self._conv(ins, out, w, o, group=self.shape(ins[0])[3])

    def _conv(self, ins, out, w, o, group):
        _, h, wd, _ = self.shape(ins[0])
        kernel, stride, dilation = tuple(w.shape[2:]), (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
        pads = self.same_pads((h, wd), kernel, stride, dilation) if o.Padding() == self.tflite.Padding.SAME else [0, 0, 0, 0]
        inputs = [self.name(ins[0]), self.add_init(self.name(ins[1]) + "_w", w.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.add_init(self.name(ins[2]) + "_b", self.const(ins[2]).astype(np.float32)))
        self.node("Conv", inputs, self.name(out), kernel_shape=list(kernel), strides=list(stride),
                  dilations=list(dilation), pads=pads, group=group)
        self.activation(o.FusedActivationFunction(), self.name(out))
        self.layout[out] = "nchw"

    def op_add(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.AddOptions)
        self.node("Add", [self._input(ins[0]), self._input(ins[1])], self.name(out))
        self.activation(o.FusedActivationFunction(), self.name(out))
        self.layout[out] = self.layout.get(ins[0], "nchw")

    def op_mul(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.MulOptions)
        self.node("Mul", [self._input(ins[0]), self._input(ins[1])], self.name(out))
        self.activation(o.FusedActivationFunction(), self.name(out))
        self.layout[out] = "nchw"

    def op_prelu(self, op, ins, out):
        self.node("PRelu", [self.name(ins[0]), self._input(ins[1])], self.name(out))
        self.layout[out] = "nchw"

    def op_hard_swish(self, op, ins, out):
        self.node("HardSwish", [self.name(ins[0])], self.name(out))
        self.layout[out] = "nchw"

    def op_logistic(self, op, ins, out):
        self.node("Sigmoid", [self.name(ins[0])], self.name(out))
        self.layout[out] = "nchw"

    def op_average_pool_2d(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.Pool2DOptions)
        _, h, w, _ = self.shape(ins[0])
        kernel, stride = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        pads = self.same_pads((h, w), kernel, stride) if o.Padding() == self.tflite.Padding.SAME else [0, 0, 0, 0]
        # TFLite averages over the valid pixels only (count_include_pad=0, ONNX's default).
        self.node("AveragePool", [self.name(ins[0])], self.name(out), kernel_shape=list(kernel), strides=list(stride), pads=pads)
        self.activation(o.FusedActivationFunction(), self.name(out))
        self.layout[out] = "nchw"

    def op_custom(self, op, ins, out, code: str):
        if code != "Convolution2DTransposeBias":
            raise SystemExit(f"custom op {code} is not supported")
        # MediaPipe's transposed convolution with bias; options: TfLiteTransposeConvParams
        # {padding (1 SAME, 2 VALID), stride_width, stride_height} as int32s.
        padding, stride_w, stride_h = (int(v) for v in op.CustomOptionsAsNumpy().view(np.int32)[:3])
        w = self.const(ins[1]).astype(np.float32).transpose(3, 0, 1, 2)  # OHWI → IOHW
        _, h_in, w_in, _ = self.shape(ins[0])
        _, h_out, w_out, _ = self.shape(out)
        kh, kw = w.shape[2:]
        if padding == 1:  # SAME: output = input × stride; the surplus of the full output is cut evenly, extra at the end
            extra = [(h_in - 1) * stride_h + kh - h_out, (w_in - 1) * stride_w + kw - w_out]
            pads = [extra[0] // 2, extra[1] // 2, extra[0] - extra[0] // 2, extra[1] - extra[1] // 2]
        else:
            pads = [0, 0, 0, 0]
        inputs = [self.name(ins[0]), self.add_init(self.name(ins[1]) + "_w", w),
                  self.add_init(self.name(ins[2]) + "_b", self.const(ins[2]).astype(np.float32))]
        self.node("ConvTranspose", inputs, self.name(out), kernel_shape=[kh, kw], strides=[stride_h, stride_w], pads=pads)
        self.layout[out] = "nchw"

    def op_relu(self, op, ins, out):
        self.node("Relu", [self.name(ins[0])], self.name(out))
        self.layout[out] = self.layout[ins[0]]

    def op_pad(self, op, ins, out):
        pads = self.const(ins[1]).astype(np.int64)  # (4, 2) NHWC: (begin, end) per axis
        nchw = pads[[0, 3, 1, 2]]
        self.node("Pad", [self.name(ins[0]), self.add_init(self.name(out) + "_pads", np.concatenate([nchw[:, 0], nchw[:, 1]]))],
                  self.name(out), mode="constant")
        self.layout[out] = "nchw"

    def op_max_pool_2d(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.Pool2DOptions)
        _, h, w, _ = self.shape(ins[0])
        kernel, stride = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        pads = self.same_pads((h, w), kernel, stride) if o.Padding() == self.tflite.Padding.SAME else [0, 0, 0, 0]
        if any(pads):
            raise SystemExit("MAX_POOL_2D with SAME padding would pad with -inf in TFLite; not supported")
        self.node("MaxPool", [self.name(ins[0])], self.name(out), kernel_shape=list(kernel), strides=list(stride))
        self.activation(o.FusedActivationFunction(), self.name(out))
        self.layout[out] = "nchw"

    def op_resize_bilinear(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.ResizeBilinearOptions)
        _, h, w, _ = self.shape(ins[0])
        oh, ow = (int(v) for v in self.const(ins[1]))
        mode = "align_corners" if o.AlignCorners() else "half_pixel" if o.HalfPixelCenters() else "asymmetric"
        scales = self.add_init(self.name(out) + "_scales", np.array([1, 1, oh / h, ow / w], np.float32))
        self.node("Resize", [self.name(ins[0]), "", scales], self.name(out), mode="linear", coordinate_transformation_mode=mode)
        self.layout[out] = "nchw"

    def op_depth_to_space(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.DepthToSpaceOptions)
        # TensorFlow's NHWC depth-to-space is ONNX's NCHW DepthToSpace in "DCR" order.
        self.node("DepthToSpace", [self.name(ins[0])], self.name(out), blocksize=o.BlockSize(), mode="DCR")
        self.layout[out] = "nchw"

    def op_reshape(self, op, ins, out):
        src = self.name(ins[0])
        if self.layout.get(ins[0]) == "nchw":
            src = self.node("Transpose", [src], self.name(out) + "_nhwc", perm=[0, 2, 3, 1])
        shape = np.array(self.shape(out), np.int64)
        shape[0] = 0  # copy the batch dimension: the models run on any batch size
        self.node("Reshape", [src, self.add_init(self.name(out) + "_shape", shape)], self.name(out))
        self.layout[out] = "plain"

    def op_concatenation(self, op, ins, out):
        o = _union(op.BuiltinOptions(), self.tflite.ConcatenationOptions)
        rank = len(self.shape(out))
        axis = o.Axis() % rank
        nchw = rank == 4 and self.layout.get(ins[0]) == "nchw"
        self.node("Concat", [self._input(i) for i in ins], self.name(out), axis=NHWC_TO_NCHW_AXIS[axis] if nchw else axis)
        self.activation(o.FusedActivationFunction(), self.name(out))
        self.layout[out] = "nchw" if nchw else "plain"


def check_batches(path: Path) -> None:
    """A batch of 3 gives the three batches of 1 (the reshapes copy the batch dimension)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    side = session.get_inputs()[0].shape[2]
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, side, side)).astype(np.float32)
    together = session.run(None, {"input": x})
    for i in range(3):
        for a, b in zip(together, session.run(None, {"input": x[i:i + 1]})):
            np.testing.assert_allclose(a[i:i + 1], b, rtol=1e-4, atol=1e-3)


def check_against_tflite(tflite_path: Path, onnx_path: Path, outputs: dict[str, str]) -> float:
    """Largest absolute difference between the TFLite interpreter's outputs and the ONNX model's on
    two random inputs; fails above 1e-3 (outputs are logits and pixel offsets up to ~200)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(tflite_path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed in range(2):
        x = np.random.default_rng(seed).uniform(-1, 1, inp["shape"]).astype(np.float32)  # (1, S, S, 3)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        want = {o["name"]: interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()}
        got = dict(zip(outputs, session.run(list(outputs), {"input": x.transpose(0, 3, 1, 2)})))
        for onnx_name, tfl_name in outputs.items():
            ref = want[tfl_name]
            value = got[onnx_name]
            if value.ndim == 4:  # an NCHW image output
                value = value.transpose(0, 2, 3, 1)
            worst = max(worst, float(np.abs(value.reshape(ref.shape) - ref).max()))
    if worst > 1e-3:
        raise SystemExit(f"{onnx_path}: differs from the TFLite model by up to {worst}")
    return worst


def convert_all(models: dict, out: Path) -> None:
    import mediapipe
    import onnx

    modules = mediapipe_modules()
    out.mkdir(parents=True, exist_ok=True)
    sources = {}
    for stem, (rel, outputs) in models.items():
        src = modules / rel
        buf = src.read_bytes()
        model = Converter(buf, outputs).convert()
        path = out / f"{stem}.onnx"
        onnx.save(model, path)
        check_batches(path)
        try:
            diff = f"{check_against_tflite(src, path, outputs):.2e}"
        except ImportError:
            diff = "not checked (ai-edge-litert is not installed)"
        sources[path.name] = {
            "from": f"mediapipe=={mediapipe.__version__} (PyPI), mediapipe/modules/{rel}",
            "tflite_sha256": hashlib.sha256(buf).hexdigest(),
            "onnx_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "license": "Apache-2.0 (MediaPipe; see LICENSE in this folder)",
            "converter": "scripts/mediapipe/convert_blazeface.py",
            "max_abs_diff_vs_tflite": diff,
        }
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB, {len(model.graph.node)} nodes, max |ONNX - TFLite| {diff}")
    (out / "SOURCES.json").write_text(json.dumps(sources, indent=2) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the detectors (.onnx files and SOURCES.json)")
    p.add_argument("--parsers-out", type=Path, help="folder for the face mesh and selfie segmentation (training only)")
    args = p.parse_args(argv)
    convert_all(DETECTORS, args.out)
    if args.parsers_out:
        convert_all(PARSERS, args.parsers_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
