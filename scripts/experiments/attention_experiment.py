"""Does face-parsing attention help cross-attribute localization? A small Table X (paper Sec. V-B7).

The same training run, with and without attention maps, on synthetic faces whose fakes change one
property-like region; each model is then tested on fakes of another property. See
docs/attention_experiment.md for the setup, the numbers and what they do and do not show.

    python scripts/experiments/attention_experiment.py --out runs/attention_experiment

Synthetic data (no dataset or parsing weights can be downloaded here):

- a **parsing map** of a cartoon face in the canonical CelebAMask-HQ numbering (background, hair
  around and above the head with bangs, skin, brows, eyes, nose, lips and mouth, neck, cloth) with
  random size, position and proportions;
- a **real image** rendered from it: a random colour per part (hair colours from black to blond),
  low-frequency shading, fine texture, sensor noise;
- a **fake**, GAN-style: the property's region is edited (``Blond hair``/``Black hair``: hair
  recoloured; ``Smile``: lips and mouth recoloured), the edited image is re-synthesized by a
  "decoder" (2× down, nearest-neighbour up, a ±checkerboard: transposed-convolution artifacts), and
  blended back with a feathered region mask; outside the region the re-synthesis leaks in at 30 %
  (the skip-connection repair that leaves the rest "not totally fake", Sec. IV-C). Ground truth is
  Eq. 7 of the pair, as always.

The **parser is an oracle**: the generator's own parsing maps are written into the parsing cache
(``ROOT/.attention/oracle/``) and ``FaceAttention`` reads them like any parser's output, so the
property table, the blur and the data pipeline are the production ones and only the parsing
network is replaced (a real parser would be less exact). This measures the attention mechanism.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 64
TRAIN_PROPERTY = "Blond hair"
TEST_PROPERTIES = ("Black hair", "Smile", "Blond hair")

HAIR_COLOURS = np.array([(20, 18, 16), (45, 30, 20), (90, 60, 35), (140, 95, 55), (170, 120, 70), (200, 170, 110),
                         (215, 195, 140), (120, 110, 100), (150, 60, 30)], np.float32)  # RGB, black to blond
EDIT_COLOURS = {"blond_hair": (225, 200, 120), "black_hair": (22, 18, 15)}


# --------------------------------------------------------------------------------------- generator


def face_labels(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A canonical (CelebAMask-HQ numbering) uint8 parsing map of a cartoon face."""
    from fakelocator.training.attention.labels import LABEL

    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cx, cy = size * (0.5 + rng.normal(0, 0.04)), size * (0.56 + rng.normal(0, 0.03))
    fw = size * rng.uniform(0.22, 0.28)
    fh = fw * rng.uniform(1.2, 1.35)

    def ellipse(x, y, ax, ay):
        return ((xx - x) / ax) ** 2 + ((yy - y) / ay) ** 2 <= 1

    labels = np.zeros((size, size), np.uint8)
    labels[yy > cy + 0.95 * fh] = LABEL["cloth"]
    labels[(np.abs(xx - cx) < 0.45 * fw) & (yy > cy) & (yy < cy + 1.15 * fh)] = LABEL["neck"]
    hair = ellipse(cx, cy - 0.25 * fh, fw * rng.uniform(1.15, 1.4), fh * rng.uniform(1.0, 1.2)) & (yy < cy + 0.2 * fh)
    labels[hair] = LABEL["hair"]
    face = ellipse(cx, cy, fw, fh)
    labels[face] = LABEL["skin"]
    labels[face & (yy < cy - fh * rng.uniform(0.45, 0.65))] = LABEL["hair"]  # bangs
    for side, eye, brow in ((-1, "l_eye", "l_brow"), (1, "r_eye", "r_brow")):
        ex = cx + side * 0.4 * fw
        labels[ellipse(ex, cy - 0.28 * fh, 0.24 * fw, 0.05 * fh)] = LABEL[brow]
        labels[ellipse(ex, cy - 0.13 * fh, 0.18 * fw, 0.08 * fh)] = LABEL[eye]
    labels[ellipse(cx, cy + 0.12 * fh, 0.11 * fw, 0.2 * fh)] = LABEL["nose"]
    my, mw, mh = cy + 0.5 * fh, 0.38 * fw * rng.uniform(0.9, 1.1), 0.1 * fh
    lips = ellipse(cx, my, mw, mh)
    labels[lips & (yy < my)] = LABEL["u_lip"]
    labels[lips & (yy >= my)] = LABEL["l_lip"]
    labels[lips & (np.abs(yy - my) < 0.2 * mh + 0.5)] = LABEL["mouth"]
    return labels


def smooth_field(rng: np.random.Generator, size: int, cells: int, channels: int = 3) -> np.ndarray:
    import cv2

    low = rng.normal(0, 1, (cells, cells, channels)).astype(np.float32)
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels)


def render(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A real uint8 RGB image of the parsing map."""
    import cv2

    from fakelocator.training.attention.labels import LABEL

    size = labels.shape[0]
    palette = rng.uniform(40, 215, (19, 3)).astype(np.float32)  # background, cloth ... random
    skin = np.array((225, 180, 150), np.float32) * rng.uniform(0.45, 1.05)
    for name in ("skin", "nose", "neck", "l_ear", "r_ear"):
        palette[LABEL[name]] = skin * (0.93 if name == "nose" else 1.0)
    palette[LABEL["hair"]] = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.9, 1.1)
    palette[[LABEL["l_brow"], LABEL["r_brow"]]] = palette[LABEL["hair"]] * 0.6
    palette[[LABEL["l_eye"], LABEL["r_eye"]]] = (235, 235, 230)
    palette[[LABEL["u_lip"], LABEL["l_lip"]]] = skin * (0.85, 0.55, 0.55)
    palette[LABEL["mouth"]] = (70, 30, 30)
    image = palette[labels]
    image *= 1 + 0.12 * smooth_field(rng, size, 4)  # shading
    waves = np.arange(size, dtype=np.float32)[None, :] * rng.uniform(0.8, 1.4)
    strands = np.sin(waves + 3 * smooth_field(rng, size, 6, 1)[..., 0])
    image[labels == LABEL["hair"]] += 14 * strands[labels == LABEL["hair"], None]
    image = cv2.GaussianBlur(image, (0, 0), 0.7)  # soft part edges, like a photo
    image += rng.normal(0, 2.0, image.shape)  # sensor noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def resynthesize(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A GAN decoder's traces: 2× down, nearest up, ± checkerboard (float32)."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image.astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    checker = np.where(np.indices((h, w)).sum(0) % 2 == 0, 1.0, -1.0).astype(np.float32)[..., None]
    return up + rng.uniform(6, 10) * checker


def make_fake(rng: np.random.Generator, real: np.ndarray, labels: np.ndarray, prop: str) -> np.ndarray:
    import cv2

    from fakelocator.training.attention.labels import normalize_property, region_mask, region_spec

    key = normalize_property(prop)
    region = region_mask(labels, region_spec(prop))
    edited = real.astype(np.float32)
    if key in EDIT_COLOURS:
        target = np.array(EDIT_COLOURS[key], np.float32)
        luma = edited[region].mean(axis=1, keepdims=True) / max(float(edited[region].mean()), 1.0)
        edited[region] = 0.25 * edited[region] + 0.75 * target * luma
    else:  # Smile: redder lips, brighter mouth
        edited[region] = edited[region] * (1.15, 0.85, 0.85) + (10, 0, 0)
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.5)[..., None]
    fake_region = resynthesize(edited, rng)
    repaired = real + 0.3 * (resynthesize(real.astype(np.float32), rng) - real)  # skip-connection repair outside
    fake = soft * fake_region + (1 - soft) * repaired
    return np.clip(np.rint(fake), 0, 255).astype(np.uint8)


def write_split(root: Path, prop: str, pairs: int, seed: int) -> None:
    """ROOT/real/NNNN.png, ROOT/fake/NNNN.png, ROOT/labels/NNNN.png (the oracle's parsing) and a manifest."""
    import cv2

    rng = np.random.default_rng(seed)
    rows = []
    for sub in ("real", "fake", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        labels = face_labels(rng)
        real = render(rng, labels)
        fake = make_fake(rng, real, labels, prop)
        name = f"{i:04d}.png"
        cv2.imwrite(str(root / "real" / name), real[:, :, ::-1])
        cv2.imwrite(str(root / "fake" / name), fake[:, :, ::-1])
        cv2.imwrite(str(root / "labels" / name), labels)
        rows += [(f"real/{name}", "", "real", ""), (f"fake/{name}", f"real/{name}", "partial", prop)]
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "real", "kind", "property"])
        writer.writerows(rows)


# -------------------------------------------------------------------------------- oracle parser


class OracleParser:
    """The generator's parsing maps, put in the parsing cache; ``parse`` is never reached."""

    name = "oracle"
    identity = "oracle:generator-labels"

    def parse(self, images):
        raise RuntimeError("the oracle's maps are all in the cache")


def oracle_attention(root: Path):
    import cv2

    from fakelocator.training.attention.cache import ParsingCache
    from fakelocator.training.attention.provider import FaceAttention
    from fakelocator.training.samples import load_samples

    samples = load_samples(root)
    cache = ParsingCache(OracleParser.name)
    for s in samples:
        labels = cv2.imread(str(root / "labels" / s.image.name), cv2.IMREAD_GRAYSCALE)
        cache.write(s.image, s.root, OracleParser.identity, labels)
    return FaceAttention(samples, parser=OracleParser())


# ------------------------------------------------------------------------------------ evaluation


def evaluate(weights: Path, root: Path) -> dict:
    """ACC over the split's reals and fakes; COSS, PSNR, SSIM inside the property's region (as Table X)."""
    import cv2
    import torch

    from fakelocator.contract import to_network_input
    from fakelocator.evaluation.metrics import coss, psnr, ssim
    from fakelocator.training.attention.labels import region_mask, region_spec
    from fakelocator.training.checkpoint import load_model
    from fakelocator.training.samples import ground_truth, load_samples, read_image

    model, _ = load_model(weights)
    samples = load_samples(root)
    x = np.stack([to_network_input(read_image(s.image), model.config.preprocessing, "RGB") for s in samples])
    with torch.no_grad():
        out = model(torch.from_numpy(x))  # inference: the white map (no attention)
    maps, scores = out["map"][:, 0].numpy(), out["score"][:, 0].numpy()
    labels = np.array([s.label for s in samples])
    rows = {"coss": [], "psnr": [], "ssim": []}
    for s, m in zip(samples, maps):
        if s.kind != "partial":
            continue
        gt = ground_truth(s, read_image(s.image), read_image(s.real))
        region = region_mask(cv2.imread(str(root / "labels" / s.image.name), cv2.IMREAD_GRAYSCALE), region_spec(s.property))
        rows["coss"].append(coss(m[region][None], gt[region][None]))
        rows["psnr"].append(psnr(m[region][None], gt[region][None]))
        ys, xs = np.nonzero(region)
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        half = max(8, (np.ptp(ys) + 1) // 2, (np.ptp(xs) + 1) // 2)
        y0, x0 = max(0, cy - half), max(0, cx - half)
        box = np.s_[y0:min(SIZE, y0 + 2 * half), x0:min(SIZE, x0 + 2 * half)]
        rows["ssim"].append(ssim(m[box], gt[box]))
    pred = scores >= 0.5
    return {
        "acc": float((pred == labels).mean()),
        "real_acc": float((~pred[labels == 0]).mean()),
        "fake_acc": float(pred[labels == 1].mean()),
        **{k: float(np.mean(v)) for k, v in rows.items()},
    }


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/attention_experiment"))
    p.add_argument("--pairs", type=int, default=200, help="training pairs (real + fake)")
    p.add_argument("--test-pairs", type=int, default=100, help="pairs per test property")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> int:
    from fakelocator.contract import Preprocessing
    from fakelocator.training.attention.provider import AttentionConfig
    from fakelocator.training.augment import AugmentConfig
    from fakelocator.training.config import ModelConfig
    from fakelocator.training.trainer import TrainConfig, train

    started = time.perf_counter()
    data = args.out / "data"
    train_root = data / f"train_{TRAIN_PROPERTY.replace(' ', '_')}"
    if not (train_root / "manifest.csv").is_file():
        write_split(train_root, TRAIN_PROPERTY, args.pairs, seed=100)
        for i, prop in enumerate(TEST_PROPERTIES):
            write_split(data / f"test_{prop.replace(' ', '_')}", prop, args.test_pairs, seed=200 + i)
    attention = oracle_attention(train_root)
    print(f"data ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    results = []
    for seed in args.seeds:
        for use_attention in (False, True):
            name = f"{'with' if use_attention else 'no'}_fp_seed{seed}"
            config = TrainConfig(
                data=[str(train_root)], val_fraction=0, out=str(args.out / "runs" / name), seed=seed,
                model=ModelConfig(unet_width=8, preprocessing=Preprocessing(SIZE, SIZE)),
                augment=AugmentConfig(p_real=0.0, p_fake=0.0), attention=AttentionConfig(mode="off"),
                epochs=args.epochs, batch_size=16, lr=1e-3, lr_schedule="cosine",
                workers=0, threads=args.threads, device="cpu",
            )
            t0 = time.perf_counter()
            trained = train(config, attention_provider=attention if use_attention else None, progress=False,
                            command="scripts/experiments/attention_experiment.py")
            train_s = time.perf_counter() - t0
            for prop in TEST_PROPERTIES:
                metrics = evaluate(trained.weights, data / f"test_{prop.replace(' ', '_')}")
                results.append({"seed": seed, "attention": use_attention, "test": prop, "train_s": round(train_s, 1), **metrics})
                print(json.dumps(results[-1]), file=sys.stderr)
    total = time.perf_counter() - started
    summary = {"results": results, "seconds": total, "args": vars(args)}
    (args.out / "results.json").write_text(json.dumps(summary, default=str, indent=1))
    print(table(results))
    print(f"\ntotal {total:.0f} s (data, {len(args.seeds) * 2} training runs, evaluation)")
    return 0


def table(results: list[dict]) -> str:
    """Mean ± standard deviation over seeds, per test property and metric, like Table X."""
    lines = ["| test (trained on " + TRAIN_PROPERTY + ") | metric | no FP | with FP |", "|---|---|---|---|"]
    for prop in TEST_PROPERTIES:
        for metric in ("acc", "real_acc", "fake_acc", "coss", "psnr", "ssim"):
            cells = []
            for use in (False, True):
                v = np.array([r[metric] for r in results if r["test"] == prop and r["attention"] == use])
                cells.append(f"{v.mean():.3f} ± {v.std():.3f}")
            lines.append(f"| {prop} | {metric} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
