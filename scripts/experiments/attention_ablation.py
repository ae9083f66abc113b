"""The paper's attention ablation on face-part edits of real photos, with the real (mesh) parser.

    nice -n 10 python scripts/experiments/attention_ablation.py --out runs/attention_ablation

The same training run twice per seed — with the face-parsing attention of Sec. IV-C (maps from
the MediaPipe face-mesh parser that ships in the package, ``--attention on --parsing-model mesh``)
and without (``--attention off``) — then both models are tested (white map, as at inference) on
held-out face-part edits: pixel AUC and COSS per part. See docs/attention_experiment.md.

Data: the two photos with a face that installed packages ship (scikit-image's astronaut,
matplotlib's Grace Hopper), cut into random views and edited by the project's synthesis
(``synthesize_one``: a partial re-synthesis through a random decoder, often with a colour edit)
inside one face part — ``face``, ``hair``, ``eyes``, ``mouth``, ``nose`` — whose region comes from
the same face mesh (``training/synth/face_masks.py``; draws whose view had no usable mesh part are
skipped and counted in ``regions.json``). Each fake's ``property`` is its part, so the
attention map of a training fake shows that part; each real borrows its pair's. Training and test
items come from different seeds (the test views are new crops of the same two faces: this measures
where the network looks, not generalization to new people).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PARTS = ("face", "hair", "eyes", "mouth", "nose")


def write_split(root: Path, pairs_per_part: int, seed: int, size: int) -> None:
    """``pairs_per_part`` real/fake pairs per face part under ``root`` with a manifest."""
    import cv2

    from fakelocator.training.synth import SynthConfig, synthesize_one
    from fakelocator.training.synth.photos import bundled_photos

    photos = [p for p in bundled_photos()[0] if p.faces]
    if not photos:
        raise SystemExit("no bundled photo with a face (scikit-image and matplotlib are needed)")
    lines = ["image,real,kind,property"]
    (root / "real").mkdir(parents=True, exist_ok=True)
    (root / "fake").mkdir(parents=True, exist_ok=True)
    sources = {}
    for p_index, part in enumerate(PARTS):
        cfg = SynthConfig(region_weights={part: 1.0}, size_range=(size, int(size * 1.5)), min_source_side=size // 2,
                          model_input=size)
        draw = 0
        for i in range(pairs_per_part):
            while True:  # only edits whose region is the face mesh's part (not a box laid out at random)
                rng = np.random.default_rng([seed, p_index, draw])
                item = synthesize_one(photos[draw % len(photos)], rng, cfg, kind="partial")
                draw += 1
                sources[item.info["face_source"]] = sources.get(item.info["face_source"], 0) + 1
                if item.info["face_source"] == "mesh":
                    break
            name = f"{part}_{i:03d}.png"
            cv2.imwrite(str(root / "real" / name), item.real[:, :, ::-1])
            cv2.imwrite(str(root / "fake" / name), item.fake[:, :, ::-1])
            lines += [f"real/{name},,real,", f"fake/{name},real/{name},partial,{part}"]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    (root / "regions.json").write_text(json.dumps(sources) + "\n")


def evaluate(weights: Path, root: Path) -> dict:
    """Per part: pixel AUC of all its test fakes' pixels pooled (Eq. 7 ground truth binarized at
    0.1), mean per-image pixel AUC, and COSS (whole map); at the network's output resolution."""
    import cv2
    import torch

    from fakelocator.contract import to_network_input
    from fakelocator.evaluation.metrics import binarize, coss, histogram_auc, level_histograms, pixel_levels, pixel_metrics
    from fakelocator.training.checkpoint import load_model
    from fakelocator.training.samples import ground_truth, load_samples, read_image

    model, _ = load_model(weights)
    model.eval()
    samples = [s for s in load_samples(root) if s.kind == "partial"]
    h, w = model.config.preprocessing.size
    x = np.stack([to_network_input(read_image(s.image), model.config.preprocessing, "RGB") for s in samples])
    with torch.no_grad():
        maps = np.concatenate([model(torch.from_numpy(x[i:i + 32]))["map"][:, 0].numpy() for i in range(0, len(x), 32)])
    out = {}
    for part in PARTS:
        levels, truths, aucs, cosses = [], [], [], []
        for s, m in zip(samples, maps):
            if s.property != part:
                continue
            gt = cv2.resize(ground_truth(s, read_image(s.image), read_image(s.real)), (w, h), interpolation=cv2.INTER_AREA)
            levels.append(pixel_levels(m).ravel())
            truths.append(binarize(gt).ravel())
            aucs.append(pixel_metrics(m, gt)["pixel_auc"])
            cosses.append(coss(m, gt))
        pooled = histogram_auc(*level_histograms(np.concatenate(levels), np.concatenate(truths)))
        out[part] = {"pixel_auc_pooled": pooled, "pixel_auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan"),
                     "coss": float(np.mean(cosses)), "n": len(cosses)}
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/attention_ablation"))
    p.add_argument("--train-pairs", type=int, default=40, help="training pairs per part")
    p.add_argument("--test-pairs", type=int, default=16, help="test pairs per part")
    p.add_argument("--size", type=int, default=128, help="network input side (and views of about this size)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return run(args)


def run(args: argparse.Namespace) -> int:
    from fakelocator.contract import Preprocessing
    from fakelocator.training.attention.provider import AttentionConfig
    from fakelocator.training.augment import AugmentConfig
    from fakelocator.training.config import ModelConfig
    from fakelocator.training.trainer import TrainConfig, train

    started = time.perf_counter()
    train_root, test_root = args.out / "data" / "train", args.out / "data" / "test"
    if not (train_root / "manifest.csv").is_file():
        write_split(train_root, args.train_pairs, 100, args.size)
        write_split(test_root, args.test_pairs, 200, args.size)
    data_s = time.perf_counter() - started
    print(f"data ready in {data_s:.0f} s; regions: {(train_root / 'regions.json').read_text().strip()}", file=sys.stderr)
    results = []
    for seed in args.seeds:
        for use in (False, True):
            config = TrainConfig(
                data=[str(train_root)], val_fraction=0, out=str(args.out / "runs" / f"{'with' if use else 'no'}_fp_seed{seed}"),
                seed=seed, model=ModelConfig(unet_width=8, preprocessing=Preprocessing(args.size, args.size)),
                augment=AugmentConfig(p_real=0.0, p_fake=0.0),
                attention=AttentionConfig(mode="on" if use else "off", parser="mesh"),
                epochs=args.epochs, batch_size=16, lr=1e-3, lr_schedule="cosine", workers=0, threads=args.threads, device="cpu",
            )
            t0 = time.perf_counter()
            trained = train(config, progress=False, command="scripts/experiments/attention_ablation.py")
            row = {"seed": seed, "attention": use, "train_s": round(time.perf_counter() - t0, 1),
                   "parts": evaluate(trained.weights, test_root)}
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    total = time.perf_counter() - started
    (args.out / "results.json").write_text(json.dumps({"results": results, "seconds": total, "data_s": data_s,
                                                       "args": vars(args)}, default=str, indent=1))
    print(table(results))
    print(f"\ntotal {total:.0f} s")
    return 0


def table(results: list[dict]) -> str:
    lines = ["| part | metric | no FP | with FP | with − no, per seed |", "|---|---|---|---|---|"]
    for part in PARTS:
        for metric in ("pixel_auc", "pixel_auc_pooled", "coss"):
            arms = [np.array([r["parts"][part][metric] for r in results if r["attention"] == use]) for use in (False, True)]
            diffs = ", ".join(f"{d:+.3f}" for d in arms[1] - arms[0])
            lines.append(f"| {part} | {metric} | {arms[0].mean():.3f} ± {arms[0].std():.3f} | "
                         f"{arms[1].mean():.3f} ± {arms[1].std():.3f} | {diffs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
