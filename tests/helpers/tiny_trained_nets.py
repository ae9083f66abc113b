"""Tiny generated stand-ins for the trained generators' files (ncnn ``.param``/``.bin``, TF.js
``model.json`` + shard), written the way the real ones are, so loaders and families are tested
without the fetched cache."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np


def _w(rng, *shape, scale=0.2):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def write_ncnn_deconv(param: Path, rng, *, in_blob="data", out_blob="output") -> dict:
    """Input → Deconvolution 3→3, 4 × 4, stride 2, pad 1 (output exactly 2×). Returns the weights
    (``weight`` in ncnn's (out, in, kh, kw) order, ``bias``)."""
    weight, bias = _w(rng, 3, 3, 4, 4), _w(rng, 3, scale=0.05)
    param.parent.mkdir(parents=True, exist_ok=True)
    param.write_text(f"7767517\n2 2\nInput in 0 1 {in_blob}\n"
                     f"Deconvolution dc 1 1 {in_blob} {out_blob} 0=3 1=4 3=2 4=1 5=1 6=144\n")
    # a weight blob starts with a 4-byte tag (0: raw float32); a bias blob has none
    param.with_suffix(".bin").write_bytes(struct.pack("<I", 0) + weight.tobytes() + bias.tobytes())
    return {"weight": weight, "bias": bias}


def write_ncnn_upsampler(param: Path, scale: int, rng, *, pad=0, in_blob="data", out_blob="output") -> None:
    """A stand-in of a trained upsampler's file: ``scale`` × the input after ``pad`` edge pixels are
    removed. pad 0: nearest Interp + 1 × 1 convolution; pad 7 (waifu2x upconv_7): a 13 × 13
    unpadded convolution (eats 12 px) then a 4 × 4 stride-2 deconvolution with pad 3 (as upconv_7)."""
    param.parent.mkdir(parents=True, exist_ok=True)
    if pad == 0:
        conv_w = (np.eye(3, dtype=np.float32) * 0.9 + _w(rng, 3, 3, scale=0.05)).reshape(3, 3, 1, 1)
        param.write_text(f"7767517\n3 3\nInput in 0 1 {in_blob}\n"
                         f"Interp up 1 1 {in_blob} up 0=1 1={float(scale):e} 2={float(scale):e}\n"
                         f"Convolution mix 1 1 up {out_blob} 0=3 1=1 5=1 6=9\n")
        param.with_suffix(".bin").write_bytes(struct.pack("<I", 0) + conv_w.tobytes() + _w(rng, 3, scale=0.02).tobytes())
        return
    if pad != 7 or scale != 2:
        raise ValueError("stand-ins exist for pad 0 (any scale) and pad 7 (scale 2)")
    conv_w = np.zeros((3, 3, 13, 13), np.float32)
    conv_w[np.arange(3), np.arange(3), 6, 6] = 1.0  # the centre pixel: an identity that eats 12 px
    conv_w += _w(rng, 3, 3, 13, 13, scale=0.002)
    deconv_w = np.full((3, 3, 4, 4), 0.0, np.float32)
    deconv_w[np.arange(3), np.arange(3)] = 0.25
    deconv_w += _w(rng, 3, 3, 4, 4, scale=0.02)
    param.write_text(f"7767517\n3 3\nInput in 0 1 {in_blob}\n"
                     f"Convolution c 1 1 {in_blob} c 0=3 1=13 5=1 6={3 * 3 * 169}\n"
                     f"Deconvolution dc 1 1 c {out_blob} 0=3 1=4 3=2 4=3 5=1 6=144\n")
    param.with_suffix(".bin").write_bytes(
        struct.pack("<I", 0) + conv_w.tobytes() + np.zeros(3, np.float32).tobytes()
        + struct.pack("<I", 0) + deconv_w.tobytes() + np.zeros(3, np.float32).tobytes())


def write_tfjs_model(folder: Path, scale: int, rng) -> dict:
    """A TF.js layers model shaped like esrgan-slim's (conv, relu, concatenate, 1 × 1 fuse, add,
    nearest UpSampling2D, conv). Returns its weights by name (Keras HWIO kernels)."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = {"F0/kernel": (3, 3, 3, 4), "F0/bias": (4,), "F1/kernel": (3, 3, 4, 2), "F1/bias": (2,),
              "LFF/kernel": (1, 1, 6, 4), "LFF/bias": (4,), "SR/kernel": (3, 3, 4, 3), "SR/bias": (3,)}
    weights = {k: _w(rng, *s) for k, s in shapes.items()}

    def conv(name, src, filters, k, padding="same"):
        return {"class_name": "Conv2D", "name": name, "inbound_nodes": [[[src, 0, 0, {}]]],
                "config": {"filters": filters, "kernel_size": [k, k], "strides": [1, 1], "padding": padding,
                           "dilation_rate": [1, 1], "activation": "linear", "use_bias": True}}

    layers = [
        {"class_name": "InputLayer", "name": "LR", "inbound_nodes": [], "config": {}},
        conv("F0", "LR", 4, 3),
        conv("F1", "F0", 2, 3),
        {"class_name": "Activation", "name": "F1_relu", "inbound_nodes": [[["F1", 0, 0, {}]]], "config": {"activation": "relu"}},
        {"class_name": "Concatenate", "name": "cat", "inbound_nodes": [[["F0", 0, 0, {}], ["F1_relu", 0, 0, {}]]],
         "config": {"axis": 3}},
        conv("LFF", "cat", 4, 1, "valid"),
        {"class_name": "Add", "name": "res", "inbound_nodes": [[["LFF", 0, 0, {}], ["F0", 0, 0, {}]]], "config": {}},
        {"class_name": "UpSampling2D", "name": "up", "inbound_nodes": [[["res", 0, 0, {}]]],
         "config": {"size": [scale, scale], "interpolation": "nearest"}},
        conv("SR", "up", 3, 3),
    ]
    manifest = [{"paths": ["group1-shard1of1.bin"],
                 "weights": [{"name": k, "shape": list(v.shape), "dtype": "float32"} for k, v in weights.items()]}]
    model = {"format": "layers-model", "modelTopology": {"model_config": {"class_name": "Functional",
                                                                         "config": {"layers": layers}}},
             "weightsManifest": manifest}
    (folder / "model.json").write_text(json.dumps(model), encoding="utf-8")
    (folder / "group1-shard1of1.bin").write_bytes(b"".join(v.tobytes() for v in weights.values()))
    return weights


def populate_cache(root: Path, seed: int = 0) -> None:
    """Stand-ins for every network ``trained.NETS`` names, at the paths the fetch script uses."""
    from fakelocator.training.synth.trained import NETS

    rng = np.random.default_rng(seed)
    for nets in NETS.values():
        for net in nets:
            path = root / net.path
            if net.kind == "tfjs":
                write_tfjs_model(path.parent, net.scale, rng)
            else:
                write_ncnn_upsampler(path, net.scale, rng, pad=net.pad, in_blob=net.input_blob, out_blob=net.output_blob)
