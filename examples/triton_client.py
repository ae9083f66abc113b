"""Send preprocessed tensors to the FakeLocator network on Triton and write full-resolution fakeness maps.

This is the do-it-yourself client of the raw network (``REPO/fakelocator_model``, or ``REPO/NAME``
written with ``--no-pipeline``). Most clients should send encoded images to the server-side pipeline
instead (``fakelocator.runtime.triton_client``, docs/export.md), which does all of this on the server.

The server holds a repository written by ``fakelocator export triton``. The client reads the
preprocessing contract from the model's config (parameter ``fakelocator.preprocessing``), so it
preprocesses exactly as training did, sends one batch over gRPC, and brings each map back to its
image's resolution by the contract's rule.

    tritonserver --model-repository models/          # on the GPU machine
    python examples/triton_client.py face1.jpg face2.jpg --url localhost:8001 --out maps/

Needs ``pip install 'fakelocator[runtime,triton]'`` (no torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fakelocator.contract import Preprocessing, to_full_resolution, to_network_input
from fakelocator.metadata import PREPROCESSING_KEY as METADATA_KEY


def fetch_contract(client, model: str) -> Preprocessing:
    config = client.get_model_config(model).config
    if METADATA_KEY not in config.parameters:
        raise SystemExit(f"model {model!r} has no {METADATA_KEY} parameter; was its repository written by fakelocator?")
    return Preprocessing.from_json(config.parameters[METADATA_KEY].string_value)


def build_inputs(images_bgr: list[np.ndarray], contract: Preprocessing):
    """One (N, 3, h, w) float32 request tensor from BGR uint8 images (as OpenCV reads them)."""
    import tritonclient.grpc as grpcclient

    batch = np.stack([to_network_input(image, contract, "BGR") for image in images_bgr])
    tensor = grpcclient.InferInput("image", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    outputs = [grpcclient.InferRequestedOutput("map"), grpcclient.InferRequestedOutput("score")]
    return [tensor], outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--url", default="localhost:8001", help="Triton's gRPC endpoint")
    parser.add_argument("--model", default="fakelocator_model", help="the network model (default fakelocator_model)")
    parser.add_argument("--out", type=Path, default=Path("maps"))
    args = parser.parse_args()

    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=args.url)
    contract = fetch_contract(client, args.model)
    images = []
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{path}: not a readable image")
        images.append(image)
    inputs, outputs = build_inputs(images, contract)
    result = client.infer(args.model, inputs, outputs=outputs)
    maps, scores = result.as_numpy("map"), result.as_numpy("score")  # (N, 1, h, w), (N, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    for path, image, fakeness, score in zip(args.images, images, maps, scores):
        full = to_full_resolution(fakeness[0], image.shape[0], image.shape[1])  # (H, W) in [0, 1]
        cv2.imwrite(str(args.out / f"{path.stem}.png"), np.round(full * 255).astype(np.uint8))
        print(f"{path}: score {float(score[0]):.3f}")


if __name__ == "__main__":
    main()
