"""Train a FakeLocator model (paper Sec. IV, V-A) on paired real/fake images.

Settings come from three places, later ones winning: the built-in defaults (the paper's: Adam,
lr 1e-4, betas 0.99/0.999, weight decay 1e-7, batch 8, 10 epochs, L1 loss, classifier on,
partial augmentation of real images only), a YAML file given with --config (the format of the
config.yaml every run writes: re-run a run with `--config runs/x/config.yaml`), and the options
below. Anything not offered as an option (augmentation ranges, classifier widths...) is set in the
YAML file.

Data (see docs/data.md): each --data ROOT holds real/, fake/ (same relative paths as real/) and
entire/ folders, or a manifest.csv. --real-dir and --entire-dir add folders of real images and of
entire syntheses. Without --val, a --val-fraction of the training data is held out.

When the manifest names the manipulated facial property of each fake (Bald, Smile, hair, ...),
training multiplies face-parsing attention maps into the encoder features (--attention auto) when the
parsing network's weights are given (--parsing-weights, see docs/faces.md); without them auto trains
without attention (with a warning), --attention on makes that an error.

Writes to --out: config.yaml, checkpoints/epoch_NNN.pt and last.pt after every epoch, metrics.jsonl
(train loss; validation loss, ACC, AUC, COSS, PSNR), and model.safetensors at the end.
--resume continues a run that was killed, from its last.pt.

examples:
  fakelocator train --data data/stgan_bald --epochs 10 --out runs/stgan_bald
  fakelocator train --config runs/stgan_bald/config.yaml --resume
  fakelocator train --data data/ff --real-dir data/ffhq --backbone deeplabv3_resnet101 \\
      --pretrained-backbone weights/deeplabv3_resnet101_coco-586e9e4e.pth --device cuda
"""

from __future__ import annotations

import argparse
import logging
import sys

from fakelocator.flags import deprecated_alias

PREFIX = "cfg."  # argument destinations that are TrainConfig fields, as dotted paths


def _defaults():
    from fakelocator.training.train_config import TrainConfig

    return TrainConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fakelocator.training.attention.parsing import PARSING_MODELS
    from fakelocator.training.attention.provider import ATTENTION_MODES
    from fakelocator.training.config import BACKBONES
    from fakelocator.training.losses import MAP_LOSSES
    from fakelocator.training.train_config import LR_SCHEDULES

    d = _defaults()
    S = argparse.SUPPRESS

    def opt(group, *names, field, help, **kw):
        group.add_argument(*names, dest=PREFIX + field, default=S, help=help, **kw)

    run = parser.add_argument_group("configuration and run")
    run.add_argument("--config", metavar="FILE", help="YAML file of settings; options given here override it")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last.pt (after a crash or kill); "
                     "without --config, the run's own config.yaml is the base")
    run.add_argument("--print-config", action="store_true", help="print the resolved configuration as YAML and exit")
    opt(run, "--out", field="out", metavar="DIR", help=f"output folder (default: {d.out})")
    opt(run, "--seed", field="seed", type=int, metavar="N",
        help=f"seed of initialization, data order and augmentation (default: {d.seed})")
    opt(run, "--device", field="device", metavar="DEVICE",
        help=f"auto (CUDA when available), cpu, cuda or cuda:N (default: {d.device})")
    opt(run, "--workers", field="workers", type=int, metavar="N",
        help=f"data-loading processes, 0 = in the training process (default: {d.workers})")
    opt(run, "--threads", field="threads", type=int, metavar="N",
        help="torch/OpenCV threads of the training process, 0 = library default (default: 0)")
    opt(run, "--deterministic", field="deterministic", action="store_true",
        help="deterministic CUDA algorithms (slower); the CPU always is")
    opt(run, "--keep-checkpoints", field="keep_checkpoints", type=int, metavar="N",
        help="keep only the newest N checkpoints/epoch_NNN.pt, 0 = all (default: 0)")

    data = parser.add_argument_group("data")
    opt(data, "--data", field="data", action="append", metavar="ROOT", help="training dataset root (repeatable)")
    opt(data, "--val", field="val", action="append", metavar="ROOT",
        help="validation dataset root (repeatable); default: hold out --val-fraction of the training data")
    opt(data, "--val-fraction", field="val_fraction", type=float, metavar="F",
        help=f"share of the training data held out for validation when there is no --val, 0 = none "
        f"(default: {d.val_fraction})")
    opt(data, "--real-dir", field="real_dirs", action="append", metavar="DIR",
        help="folder of real images only, added to training (repeatable)")
    opt(data, "--entire-dir", field="entire_dirs", action="append", metavar="DIR",
        help="folder of entire face syntheses (ground truth all ones), added to training (repeatable)")
    opt(data, "--skip-invalid", field="skip_invalid", action="store_true",
        help="leave out unpaired fakes and pairs of different sizes, with a warning naming each, instead of failing")

    model = parser.add_argument_group("model")
    opt(model, "--backbone", field="model.backbone", choices=BACKBONES,
        help=f"encoder-decoder network (default: {d.model.backbone}; the paper's is deeplabv3_resnet101)")
    opt(model, "--no-classifier", field="model.classifier", action="store_false",
        help='drop the real/fake classifier branch ("no cl" of Table IV)')
    opt(model, "--unet-width", field="model.unet_width", type=int, metavar="C",
        help=f"channels of the first unet_lite stage (default: {d.model.unet_width})")
    opt(model, "--highpass-stem", field="model.highpass_stem", action="store_true",
        help="unet_lite: also feed the first layer the image's fixed 3x3 high-pass residual (the default model does)")
    h, w = d.model.preprocessing.size
    model.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), default=S, dest="input_size",
                       help=f"network input height and width, multiples of 16 (default: {h} {w})")
    pre = d.model.preprocessing
    opt(model, "--analysis", field="model.preprocessing.analysis", choices=("fit", "native"),
        help=f"what the model is made for (default: {pre.analysis}): fit, the whole image resized to the input; native, "
        "tiles of the input size at the image's own scale (training then crops each image at its own scale, and the "
        "runtime tiles; the shipped model is native, docs/training.md)")
    opt(model, "--tile-overlap", field="model.preprocessing.tile_overlap", type=int, metavar="N",
        help=f"native: pixels neighbouring tiles share at run time, stored in the model (default: {pre.tile_overlap})")
    opt(model, "--tile-pooling", field="model.preprocessing.tile_pooling", choices=("max", "mean", "top2"),
        help=f"native: how tile scores become the image's at run time, stored in the model (default: {pre.tile_pooling})")
    opt(model, "--init-weights", field="init_weights", metavar="FILE",
        help="start the whole network from these fakelocator weights (.safetensors or .pt), to fine-tune; "
             "'default' = the embedded default model. Without model options or a YAML model section, "
             "the network settings are taken from the file")
    opt(model, "--pretrained-backbone", field="pretrained_backbone", metavar="FILE",
        help="local torchvision checkpoint to start the encoder from; nothing is downloaded")

    att = parser.add_argument_group("face-parsing attention (Sec. IV-C, docs/faces.md)")
    opt(att, "--attention", field="attention.mode", choices=ATTENTION_MODES,
        help="auto: use attention maps when the manifest names facial properties; on: require them; "
        f"off: train without (default: {d.attention.mode})")
    opt(att, "--parsing-model", field="attention.parser", choices=PARSING_MODELS,
        help="auto: facexlib's BiSeNet when its weights are found, else the MediaPipe face mesh that ships in "
        f"the package; bisenet, parsenet (facexlib, local weights); mesh (default: {d.attention.parser})")
    opt(att, "--parsing-weights", field="attention.weights", metavar="FILE",
        help="its weights (parsing_bisenet.pth / parsing_parsenet.pth); default: $FAKELOCATOR_PARSING_WEIGHTS, "
        "then facexlib's weights folder; never downloaded")
    opt(att, "--attention-cache", field="attention.cache_dir", metavar="DIR",
        help="where parsing maps are cached (default: ROOT/.attention next to each dataset)")

    loss = parser.add_argument_group("loss")
    opt(loss, "--loss", field="loss.map", choices=tuple(MAP_LOSSES), help=f"fakeness-map loss (default: {d.loss.map})")
    opt(loss, "--cls-weight", field="loss.classifier_weight", type=float, metavar="W",
        help=f"weight of the classifier's BCE term (default: {d.loss.classifier_weight})")

    aug = parser.add_argument_group("partial data augmentation")
    opt(aug, "--p-real", field="augment.p_real", type=float, metavar="P",
        help=f"probability of augmenting a real image (default: {d.augment.p_real})")
    opt(aug, "--p-fake", field="augment.p_fake", type=float, metavar="P",
        help=f"probability of augmenting a fake image (default: {d.augment.p_fake})")

    optim = parser.add_argument_group("optimization")
    opt(optim, "--epochs", field="epochs", type=int, metavar="N", help=f"epochs (default: {d.epochs})")
    opt(optim, "--batch", field="batch_size", type=int, metavar="N", help=f"images per training batch (default: {d.batch_size})")
    deprecated_alias(optim, "--batch-size", "--batch", PREFIX + "batch_size", type=int)
    opt(optim, "--lr", field="lr", type=float, metavar="LR", help=f"Adam learning rate (default: {d.lr:g})")
    opt(optim, "--betas", field="betas", type=float, nargs=2, metavar=("B1", "B2"),
        help=f"Adam betas (default: {d.betas[0]} {d.betas[1]})")
    opt(optim, "--weight-decay", field="weight_decay", type=float, metavar="WD",
        help=f"Adam weight decay (default: {d.weight_decay:g})")
    opt(optim, "--lr-schedule", field="lr_schedule", choices=LR_SCHEDULES,
        help=f"learning-rate schedule (default: {d.lr_schedule})")
    opt(optim, "--max-steps", field="max_steps_per_epoch", type=int, metavar="N",
        help="stop each epoch after N batches, for quick runs (default: whole epoch)")
    opt(optim, "--max-val-steps", field="max_val_steps", type=int, metavar="N",
        help="validate on at most N batches (default: all)")


def resolve_config(args: argparse.Namespace):
    """defaults ← YAML (--config; with --resume and no --config, OUT/config.yaml) ← options → ``TrainConfig``."""
    from pathlib import Path

    from fakelocator.training.train_config import TrainConfig, load_config

    config_file = args.config
    if config_file is None and args.resume:
        run_config = Path(getattr(args, PREFIX + "out", TrainConfig().out)) / "config.yaml"
        config_file = run_config if run_config.is_file() else None
    base = load_config(config_file).to_dict() if config_file else TrainConfig().to_dict()
    for key, value in vars(args).items():
        if not key.startswith(PREFIX):
            continue
        *parents, leaf = key[len(PREFIX):].split(".")
        node = base
        for p in parents:
            node = node[p]
        node[leaf] = value
    if hasattr(args, "input_size"):
        base["model"]["preprocessing"]["height"], base["model"]["preprocessing"]["width"] = args.input_size
    if base.get("init_weights") is not None:
        _adopt_init_weights(base, args, config_file)
    return TrainConfig.from_dict(base)


def _adopt_init_weights(base: dict, args: argparse.Namespace, config_file) -> None:
    """Resolve ``--init-weights default``; with no network settings given, take the file's."""
    import yaml

    from fakelocator.training.checkpoint import default_weights_path, read_model_config

    if base["init_weights"] == "default":
        base["init_weights"] = str(default_weights_path())
    given = hasattr(args, "input_size") or any(k.startswith(PREFIX + "model.") for k in vars(args))
    if config_file and not given:
        with open(config_file, encoding="utf-8") as f:
            given = "model" in (yaml.safe_load(f) or {})
    if not given:
        base["model"] = read_model_config(base["init_weights"]).to_dict()


def run(args: argparse.Namespace) -> int:
    import yaml

    from fakelocator.training.trainer import train

    config = resolve_config(args)
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return 0
    logger = logging.getLogger("fakelocator")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        result = train(config, resume=args.resume)
    except KeyboardInterrupt:
        print(f"to continue from the last completed epoch: fakelocator train --out {config.out} --resume", file=sys.stderr)
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    print(f"model: {result.weights}")
    print(f"metrics: {result.out / 'metrics.jsonl'}  checkpoints: {result.out / 'checkpoints'}")
    return 0
