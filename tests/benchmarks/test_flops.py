"""FLOPs from the ONNX graph: hand-checked on a tiny graph, cross-checked with torch's FlopCounterMode."""

import numpy as np
import pytest

from fakelocator.benchmarks.flops import count_onnx_flops, count_torch_flops

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _init(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def hand_checked_model(batch="N"):
    """Every counted operator once, with a FLOP count worked out by hand (per image)."""
    nodes = [
        # x (N, 3, 8, 8) → conv 3→4, 3×3, pad 1 → (N, 4, 8, 8): 64 outputs × 4 ch × (3·9) MACs = 6912 MACs
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        # grouped conv 4→4 in 2 groups, stride 2 → (N, 4, 4, 4): 16 × 4 × (2·9) = 1152 MACs
        helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=2),
        # transposed conv 4→2, 2×2, stride 2 → (N, 2, 8, 8): 16 inputs × 4 ch × (2·4) = 512 MACs
        helper.make_node("ConvTranspose", ["c2", "w3"], ["c3"], strides=[2, 2]),
        helper.make_node("Flatten", ["c3"], ["f"], axis=1),  # (N, 128)
        # (N, 128) × (128, 5): 640 MACs; then the same with transB: 5 × 5 = 25 MACs
        helper.make_node("Gemm", ["f", "w4", "b4"], ["g"]),
        helper.make_node("Gemm", ["g", "w5"], ["g2"], transB=1),
        # (N, 2, 3, 4) @ (4, 6): 2 × 3 × 6 × 4 = 144 MACs
        helper.make_node("MatMul", ["y", "w6"], ["m"]),
    ]
    graph = helper.make_graph(
        nodes, "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, 3, 4])],
        [helper.make_tensor_value_info("g2", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("m", TensorProto.FLOAT, None)],
        initializer=[_init("w1", (4, 3, 3, 3)), _init("b1", (4,)), _init("w2", (4, 2, 3, 3)), _init("w3", (4, 2, 2, 2)),
                     _init("w4", (128, 5)), _init("b4", (5,)), _init("w5", (5, 5)), _init("w6", (4, 6))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


HAND_MACS = {"Conv": 6912 + 1152, "ConvTranspose": 512, "Gemm": 640 + 25, "MatMul": 144}


def test_counts_each_operator_as_worked_out_by_hand():
    count = count_onnx_flops(hand_checked_model())
    assert count.by_op == {op: 2 * macs for op, macs in HAND_MACS.items()}
    assert count.total == 2 * sum(HAND_MACS.values()) == 18770
    assert count.nodes == 6 and count.complete


@pytest.mark.parametrize("batch", ["N", 1, 16])
def test_counts_one_image_whatever_the_declared_batch(batch):
    assert count_onnx_flops(hand_checked_model(batch)).total == 18770


def test_reads_a_file_and_reports_shapes_it_cannot_resolve(tmp_path):
    model = hand_checked_model()
    model.graph.node.insert(0, helper.make_node("Mystery", ["x"], ["x2"], domain="example.custom"))
    model.graph.node[1].input[0] = "x2"  # the first conv now reads an output of unknown shape
    model.opset_import.append(helper.make_opsetid("example.custom", 1))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    count = count_onnx_flops(path)
    assert not count.complete and count.unresolved and "Conv" in count.unresolved[0]
    assert count.to_dict()["complete"] is False


def test_matches_torch_flop_counter_on_a_real_network(tiny_files):
    from fakelocator.training.checkpoint import load_model

    onnx_path, checkpoint = tiny_files
    net, _ = load_model(checkpoint)
    h, w = net.config.preprocessing.size
    ours = count_onnx_flops(onnx_path)
    assert ours.complete and ours.by_op.get("Conv", 0) > 0 and ours.by_op.get("Gemm", 0) > 0
    assert ours.total == count_torch_flops(net, (1, 3, h, w))
    assert count_torch_flops(net, (2, 3, h, w)) == 2 * ours.total
