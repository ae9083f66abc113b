"""Evaluate models on datasets: the paper's protocol (Sec. V) as one command.

Every --model (a .pt/.safetensors checkpoint, an exported .onnx or a TensorRT .engine; default: the
embedded model) runs through the runtime (`fakelocator.runtime.Locator`) on every --data dataset
(docs/data.md: real/, fake/, entire/ folders or a manifest.csv; --real-dir and --entire-dir add
folders of real images and of entire syntheses to each). Ground truth is Eq. 7 of each fake and its
real image at full resolution.

Reported (docs/evaluation.md, definitions in docs/metrics.md): ACC, real ACC, fake ACC, AUC, EER;
COSS, PSNR, SSIM, Dice, IoU, PBCA, IINC on manipulated images; per kind and per property;
models × datasets cross tables. Optional: robustness sweeps (γ = metric(degraded) / metric(clean)
for JPEG, blur, noise, low resolution and the disorganization test), single-sample clustering of
the encoder features, and example figures.

Every localization figure is shown beside those of a constant map and of a centred-prior map on the
same images, with pixel AUC and F1 (best threshold and 0.5); rows per manipulation family, per image
size and, with --held-out-families, for the families held out of training.

Writes to --out: report.md and report.json, per_image.csv, robustness.csv and robustness/*.png,
clustering/*.png, examples/*/*.png, contact/*.png.

examples:
  fakelocator eval --model model.onnx --data data/heldout --out runs/eval_heldout
  fakelocator eval --model model.onnx --data data/heldout --robustness all --cluster --save-maps 8
  fakelocator eval --model model.onnx --data data/heldout --robustness jpeg,blur --levels jpeg=90,75,50
  fakelocator eval --model a.onnx --model b.engine --data data/stgan --data data/attgan --out runs/cross
  fakelocator eval --model model.onnx --real-dir data/ffhq --entire-dir data/stylegan2
  fakelocator eval --model model.onnx --data data/heldout --held-out-families gan_pixelshuffle,selfblend_jpeg,upscale_lanczos \
      --contact-sheet 12 --contact-include samples/
"""

from __future__ import annotations

import argparse
import shlex
import sys

from fakelocator.runtime.spec import DEFAULT_MAX_TILES

TESTS_HELP = "jpeg, blur, noise, lowres, disorganize"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("models and data")
    what.add_argument("--model", action="append", metavar="FILE",
                      help="model to evaluate (repeatable): .pt/.safetensors, .onnx or .engine; default: the embedded model")
    what.add_argument("--data", action="append", default=[], metavar="ROOT", help="dataset root (repeatable)")
    what.add_argument("--real-dir", action="append", default=[], metavar="DIR",
                      help="folder of real images, added to every dataset (repeatable)")
    what.add_argument("--entire-dir", action="append", default=[], metavar="DIR",
                      help="folder of entire syntheses (ground truth all ones), added to every dataset (repeatable)")
    what.add_argument("--skip-invalid", action="store_true",
                      help="leave out unpaired fakes and pairs of different sizes, with a warning each, instead of failing")
    what.add_argument("--limit", type=int, metavar="N", help="evaluate a seeded random subset of at most N images per dataset")
    what.add_argument("--out", default="runs/eval", metavar="DIR", help="output folder (default: runs/eval)")
    what.add_argument("--overwrite", action="store_true", help="replace the report already in --out")

    run = parser.add_argument_group("inference")
    run.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime", "torch"),
                     help="inference backend (default: auto, the fastest that loads the file)")
    run.add_argument("--device", default="auto", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--batch", type=int, default=8, metavar="N",
                     help="network inputs per inference call: images in fit analysis, tiles in native (default: 8)")
    run.add_argument("--threads", type=int, default=0, metavar="N", help="backend CPU threads, 0 = its default")
    run.add_argument("--workers", type=int, metavar="N", help="threads for reading, degrading and scoring images")
    run.add_argument("--analysis", choices=("native", "fit"),
                     help="native: overlapping tiles at each image's own scale; fit: the image resized to the network "
                     "input (default: what each model was made for; docs/runtime.md)")
    run.add_argument("--tile-overlap", type=int, metavar="N", help="native: pixels neighbouring tiles share (default: the model's)")
    run.add_argument("--tile-pooling", choices=("max", "mean", "top2"),
                     help="native: how tile scores become the image's score (default: the model's)")
    run.add_argument("--max-tiles", type=int, default=DEFAULT_MAX_TILES, metavar="N",
                     help="native: images taking more tiles fail with an error instead of being downscaled "
                     f"(default: {DEFAULT_MAX_TILES}; 0 = no limit)")

    score = parser.add_argument_group("scoring")
    score.add_argument("--threshold", type=float, default=None, metavar="T",
                       help="a score >= T is fake (ACC, real ACC, fake ACC; default: each model's calibrated "
                            "threshold, from its metadata; 0.5 for a model that states none)")
    score.add_argument("--binarize-threshold", type=float, default=0.1, metavar="T",
                       help="maps are binarized at T for IoU, Dice, PBCA, IINC (default: 0.1, the paper's)")
    score.add_argument("--at-model-resolution", action="store_true",
                       help="compare the network's own map with the ground truth resized to the network input "
                       "size, instead of both at each image's full resolution")
    score.add_argument("--held-out-families", metavar="A,B,...",
                       help="manipulation families held out of training: reported in a leave-families-out table "
                       "(family: the manifest's family column, else its upsampler, else the property)")

    rob = parser.add_argument_group("robustness (Sec. V-B8)")
    rob.add_argument("--robustness", metavar="TESTS",
                     help=f"comma-separated tests, or all: {TESTS_HELP}; each runs at its default levels unless --levels")
    rob.add_argument("--levels", action="append", default=[], metavar="TEST=L1,L2,...",
                     help="levels of one test (repeatable), e.g. jpeg=90,75,50 blur=1,5,9 noise=0,0.001 lowres=1,2,4 "
                     "disorganize=2; adds the test if --robustness does not name it")
    rob.add_argument("--degrade-only-fakes", action="store_true",
                     help="degrade fake images only, as the paper does (default: real images too, so ACC counts false alarms)")
    rob.add_argument("--seed", type=int, default=0, metavar="N",
                     help="seed of the noise, the disorganization orders, clustering and --limit (default: 0)")

    more = parser.add_argument_group("clustering, examples, output")
    more.add_argument("--cluster", action="store_true",
                      help="single-sample clustering (Sec. IV-D): t-SNE + k-means of the encoder features")
    more.add_argument("--cluster-picks", type=int, default=10, metavar="N",
                      help="labelled samples tried, one at a time (default: 10, the paper's)")
    more.add_argument("--save-maps", type=int, default=0, metavar="N",
                      help="write N example figures per model and dataset: real | fake | GT | prediction | overlay")
    more.add_argument("--contact-sheet", type=int, default=0, metavar="N",
                      help="write a contact sheet PNG per model and dataset: N rows of input | ground truth | map | "
                      "overlay, from the held-out families when given")
    more.add_argument("--contact-include", action="append", default=[], metavar="PATH",
                      help="image or folder always shown on the contact sheets, first (repeatable; e.g. samples/)")
    more.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def robustness_tests(args: argparse.Namespace) -> dict[str, tuple]:
    """--robustness and --levels → {test: levels}, in the order the tests were named."""
    from fakelocator.evaluation.robustness import DEFAULT_LEVELS, parse_levels, parse_tests

    tests = {t: DEFAULT_LEVELS[t] for t in parse_tests(args.robustness)} if args.robustness else {}
    for spec in args.levels:
        name, levels = parse_levels(spec)
        tests[name] = levels
    return tests


def build_config(args: argparse.Namespace):
    from fakelocator.evaluation.runner import EvalSettings
    from fakelocator.evaluation.suite import SuiteConfig, dataset_specs
    from fakelocator.errors import FakeLocatorError

    if args.batch < 1:
        raise FakeLocatorError(f"--batch must be >= 1, got {args.batch}")
    if args.max_tiles < 0:
        raise FakeLocatorError(f"--max-tiles must be >= 0, got {args.max_tiles}")
    if args.limit is not None and args.limit < 1:
        raise FakeLocatorError(f"--limit must be >= 1, got {args.limit}")
    if args.contact_sheet < 0:
        raise FakeLocatorError(f"--contact-sheet must be >= 0, got {args.contact_sheet}")
    from fakelocator.evaluation.groups import parse_families
    settings = EvalSettings(
        threshold=args.threshold,
        binarize_threshold=args.binarize_threshold,
        at_model_resolution=args.at_model_resolution,
        robustness=robustness_tests(args),
        degrade_reals=not args.degrade_only_fakes,
        cluster=args.cluster,
        cluster_picks=args.cluster_picks,
        seed=args.seed,
        save_maps=args.save_maps,
        workers=args.workers,
        held_out_families=parse_families(args.held_out_families),
    )
    return SuiteConfig(
        models=tuple(args.model) if args.model else (None,),
        datasets=tuple(dataset_specs(args.data, args.real_dir, args.entire_dir)),
        out=args.out,
        settings=settings,
        backend=args.backend,
        device=args.device,
        batch_size=args.batch,
        threads=args.threads,
        workers=args.workers,
        analysis=args.analysis,
        tile_overlap=args.tile_overlap,
        tile_pooling=args.tile_pooling,
        max_tiles=args.max_tiles or None,
        skip_invalid=args.skip_invalid,
        limit=args.limit,
        overwrite=args.overwrite,
        contact_sheet=args.contact_sheet,
        contact_include=tuple(args.contact_include),
        command=" ".join(shlex.quote(a) for a in ["fakelocator", "eval", *sys.argv[2:]]) if sys.argv[1:2] == ["eval"] else "",
    )


def _progress_factory(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda total, desc: tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True)


def run(args: argparse.Namespace) -> int:
    import logging

    from fakelocator.evaluation.suite import run_suite
    from fakelocator.evaluation.tables import fmt

    config = build_config(args)
    logger = logging.getLogger("fakelocator")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        result = run_suite(config, progress=_progress_factory(args.quiet))
    finally:
        logger.removeHandler(handler)
    if not args.quiet:
        for e in result.evaluations:
            m = e.metrics
            const = (e.baselines.get("subsets", {}).get("manipulated") or {}).get("constant", {}).get("coss")
            print(f"{e.model} on {e.dataset}: ACC {fmt(m['acc'])}  AUC {fmt(m['auc'])}  COSS {fmt(m['coss'])} "
                  f"(constant map {fmt(const)})  PSNR {fmt(m['psnr'], 'psnr')}  SSIM {fmt(m['ssim'])}  "
                  f"IoU@{args.binarize_threshold:g} {fmt(m['iou'])}  pixel AUC {fmt(m.get('pixel_auc'))}  "
                  f"F1 best {fmt(m.get('f1_best'))}"
                  + (f"  ({len(e.errors)} failed)" if e.errors else ""))
        print(f"report: {result.report_md}  {result.report_json}")
    failed = sum(len(e.errors) for e in result.evaluations)
    return 1 if failed else 0
