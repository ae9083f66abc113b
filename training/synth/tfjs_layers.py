"""Read a TF.js *layers* model (``model.json`` + ``.bin`` shards) into PyTorch, without TensorFlow.

For training data only: the npm package ``@upscalerjs/esrgan-slim`` ships trained ESRGAN-style
upsamplers (a residual dense network, nearest ``UpSampling2D`` + convolution) in this format;
``scripts/fetch-training-data`` unpacks them.

Supported: a Keras ``Functional`` (or ``Model``) graph of ``InputLayer``, ``Conv2D`` (``same`` or
``valid`` padding, stride 1, dilation, linear/relu activation), ``Activation`` (relu, linear,
sigmoid, tanh), ``Add``, ``Concatenate`` (channel axis), ``UpSampling2D`` (nearest or bilinear) —
everything those models use. Anything else is an error naming the layer. Weights are read from the
shards in the manifest's order (all shards concatenated); Keras kernels are HWIO, PyTorch's OIHW.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError

_DTYPES = {"float32": np.float32, "int32": np.int32}
_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


def read_weights(model_json: dict, folder: Path) -> dict[str, np.ndarray]:
    """name → array, from the shards the manifest lists (in order)."""
    out: dict[str, np.ndarray] = {}
    for group in model_json.get("weightsManifest", []):
        blob = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            dtype = _DTYPES.get(w.get("dtype", "float32"))
            if dtype is None or "quantization" in w:
                raise FakeLocatorError(f"TF.js weight {w['name']}: dtype {w.get('dtype')} / quantization not supported")
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            size = n * np.dtype(dtype).itemsize
            if offset + size > len(blob):
                raise FakeLocatorError(f"TF.js shards in {folder} end before weight {w['name']}")
            out[w["name"]] = np.frombuffer(blob, dtype, n, offset).reshape(w["shape"]).copy()
            offset += size
        if offset != len(blob):
            raise FakeLocatorError(f"TF.js shards in {folder}: {len(blob) - offset} bytes left after the last weight")
    return out


def _layers(model_json: dict) -> list[dict]:
    topo = model_json.get("modelTopology") or {}
    cfg = topo.get("model_config", topo)
    if cfg.get("class_name") not in ("Functional", "Model"):
        raise FakeLocatorError(f"TF.js model: only functional layers models are supported, got {cfg.get('class_name')!r}")
    return cfg["config"]["layers"]


def load_tfjs_layers_model(path: str | Path):
    """``model.json`` path → a ``torch.nn.Module`` taking (N, 3, H, W) in the model's own input range."""
    import torch
    from torch import nn

    path = Path(path)
    if not path.is_file():
        raise FakeLocatorError(f"TF.js model {path} not found (run scripts/fetch-training-data)")
    model_json = json.loads(path.read_text(encoding="utf-8"))
    weights = read_weights(model_json, path.parent)
    layers = _layers(model_json)

    class KerasGraph(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = []  # (name, kind, inputs, attrs)
            self.convs = nn.ModuleDict()
            for layer in layers:
                kind, c, name = layer["class_name"], layer["config"], layer["name"]
                inputs = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
                attrs: dict = {}
                if kind == "Conv2D":
                    if tuple(c.get("strides", (1, 1))) != (1, 1):
                        raise FakeLocatorError(f"TF.js layer {name}: strides {c['strides']} not supported")
                    if c.get("activation", "linear") not in _ACTIVATIONS:
                        raise FakeLocatorError(f"TF.js layer {name}: activation {c['activation']!r} not supported")
                    k = weights[f"{name}/kernel"]  # (kh, kw, in, out)
                    dil = tuple(c.get("dilation_rate", (1, 1)))
                    pad = "same" if c["padding"] == "same" else 0
                    conv = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding=pad, dilation=dil,
                                     bias=c.get("use_bias", True))
                    conv.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
                    if c.get("use_bias", True):
                        conv.bias.data = torch.from_numpy(weights[f"{name}/bias"])
                    self.convs[name.replace("/", "_")] = conv
                    attrs["activation"] = c.get("activation", "linear")
                elif kind == "Activation":
                    if c["activation"] not in _ACTIVATIONS:
                        raise FakeLocatorError(f"TF.js layer {name}: activation {c['activation']!r} not supported")
                    attrs["activation"] = c["activation"]
                elif kind == "Concatenate":
                    if c.get("axis", -1) not in (-1, 3):
                        raise FakeLocatorError(f"TF.js layer {name}: concatenation on axis {c['axis']} not supported")
                elif kind == "UpSampling2D":
                    attrs["size"] = tuple(c["size"])
                    attrs["mode"] = {"nearest": "nearest", "bilinear": "bilinear"}.get(c.get("interpolation", "nearest"))
                    if attrs["mode"] is None:
                        raise FakeLocatorError(f"TF.js layer {name}: interpolation {c['interpolation']!r} not supported")
                elif kind not in ("InputLayer", "Add"):
                    raise FakeLocatorError(f"TF.js layer {name}: {kind} is not supported")
                self.steps.append((name, kind, inputs, attrs))
            self.output_name = layers[-1]["name"]

        @staticmethod
        def _act(x, a):
            return {"linear": lambda t: t, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[a](x)

        def forward(self, x):
            values = {}
            for name, kind, inputs, attrs in self.steps:
                args = [values[i] for i in inputs]
                if kind == "InputLayer":
                    y = x
                elif kind == "Conv2D":
                    y = self._act(self.convs[name.replace("/", "_")](args[0]), attrs["activation"])
                elif kind == "Activation":
                    y = self._act(args[0], attrs["activation"])
                elif kind == "Add":
                    y = args[0]
                    for a in args[1:]:
                        y = y + a
                elif kind == "Concatenate":
                    y = torch.cat(args, dim=1)
                else:  # UpSampling2D
                    y = nn.functional.interpolate(args[0], scale_factor=attrs["size"], mode=attrs["mode"],
                                                  **({"align_corners": False} if attrs["mode"] == "bilinear" else {}))
                values[name] = y
            return values[self.output_name]

    return KerasGraph().eval()
