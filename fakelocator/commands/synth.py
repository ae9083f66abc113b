"""Make (real, fake) training pairs whose fakes carry GAN upsampling texture (paper Sec. III).

From real photos — the ones scikit-image, matplotlib and scikit-learn ship, and/or folders given
with --photos — cut many real views (random crops, sizes, aspect ratios, flips). For a partial
manipulation a soft region (ellipse, blob, face, hair, eyes, mouth, nose) is re-rendered by a
GAN-like encoder–decoder whose upsampling layers (transposed convolution, nearest, bilinear, bicubic,
unpooling, stacks of them, small random conv decoders) leave their texture, optionally with a colour
or brightness edit, and blended back through the mask. An entire synthesis re-renders the whole
image. Nothing is downloaded.

Writes OUT/real/, OUT/fake/ (same name and size as its real), OUT/entire/, OUT/manifest.csv
(image,real,kind,property + how each image was made) and OUT/synth.json (the recipe and photos).
Ground truth is not stored: it is Eq. 7 of the pair. The same --seed, --n and options give
byte-identical files for any --workers.

examples:
  fakelocator synth data/train --n 20000 --seed 0
  fakelocator synth data/heldout --n 2000 --seed 1 --sheet
  fakelocator synth data/mine --n 5000 --photos ~/faces --no-bundled --sizes 256 768
  fakelocator synth data/again --config data/train/synth.json --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fakelocator.errors import FakeLocatorError


def _weights(text: str) -> dict[str, float]:
    """``a=1,b=0.5`` → {"a": 1.0, "b": 0.5}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(f"expected name=weight[,name=weight…], got {text!r}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="dataset folder to create")
    run = parser.add_argument_group("run")
    run.add_argument("--n", type=int, default=None, help="number of items (default 1000)")
    run.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    run.add_argument("--workers", type=int, default=None, help="processes (default: CPU count, at most one per 32 items; 1 = in this process)")
    run.add_argument("--config", metavar="FILE", help="recipe from a JSON/YAML file (a synth.json works); flags override it")
    run.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT")
    run.add_argument("--sheet", action="store_true", help="also write OUT/examples.png, a contact sheet of 8 items")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    src = parser.add_argument_group("photos")
    src.add_argument("--photos", metavar="DIR", action="append", default=None,
                     help="folder of your own photos (recursive; repeatable)")
    src.add_argument("--no-bundled", action="store_true", help="do not use the photos installed packages ship")
    src.add_argument("--sizes", nargs=2, type=int, metavar=("MIN", "MAX"), help="output width/height range (default 224 1024)")
    src.add_argument("--aspect", nargs=2, type=float, metavar=("MIN", "MAX"), help="width/height range (default 0.6 1.67)")

    native = parser.add_argument_group("native-scale evaluation sets (training/synth/native_set.py)")
    native.add_argument("--native", action="store_true",
                        help="write whole images made the way the training stream makes crops (new families, "
                             "native scale, columns family/shape/width/height); uses --n, --seed, --overwrite")
    native.add_argument("--native-families", metavar="A,B", type=lambda t: tuple(x for x in t.split(",") if x),
                        help="families to draw (names in training/synth/families.py; default all)")
    native.add_argument("--native-sizes", metavar="PX,PX", type=lambda t: tuple(int(x) for x in t.split(",") if x),
                        help="long sides to draw from (default 224,256,320,448,512,768,1024)")
    native.add_argument("--native-post", action="store_true", help="post-process reals and fakes alike (JPEG, resize, noise)")

    recipe = parser.add_argument_group("recipe (see docs/synthesis.md)")
    recipe.add_argument("--fractions", type=_weights, metavar="K=W,…",
                        help="item kinds, e.g. partial=0.7,entire=0.15,real=0.15")
    recipe.add_argument("--regions", type=_weights, metavar="K=W,…",
                        help="region kinds: ellipse, blob, face, hair, eyes, mouth, nose")
    recipe.add_argument("--families", type=_weights, metavar="K=W,…",
                        help="upsamplers: transposed_conv, nearest, bilinear, bicubic, unpool")
    recipe.add_argument("--decoders", type=_weights, metavar="K=W,…", help="decoder kinds: single, stack, conv_decoder")
    recipe.add_argument("--gan-scale", nargs=2, type=float, metavar=("LO", "HI"),
                        help="decoder resolution relative to the model input (default 0.5 1.4)")
    recipe.add_argument("--edit-probability", type=float, metavar="P", help="chance of a colour/brightness edit (default 0.85)")
    recipe.add_argument("--model-input", type=int, metavar="PX", help="model input side the scale is set for (default 224)")


def _load_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FakeLocatorError(f"config file {path}: no such file")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's to fix
        raise FakeLocatorError(f"config file {path}: cannot be parsed ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]  # a synth.json written by an earlier run
    if not isinstance(data, dict):
        raise FakeLocatorError(f"config file {path}: expected a mapping of SynthConfig fields")
    return data


def config_from_args(args: argparse.Namespace):
    from fakelocator.training.synth import SynthConfig

    fields = _load_config_file(args.config) if args.config else {}
    overrides = {
        "n": args.n, "seed": args.seed, "size_range": args.sizes, "aspect_range": args.aspect,
        "kind_fractions": args.fractions, "region_weights": args.regions, "family_weights": args.families,
        "decoder_weights": args.decoders, "gan_scale": args.gan_scale, "edit_probability": args.edit_probability,
        "model_input": args.model_input,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if args.photos:
        fields["photos"] = [os.path.abspath(os.path.expanduser(p)) for p in args.photos]
    if args.no_bundled:
        fields["bundled_photos"] = False
    return SynthConfig.from_dict(fields)


def run_native(args: argparse.Namespace) -> int:
    from fakelocator.training.synth.native_set import NativeSetConfig, write_native_set

    if args.n is None or args.n < 1:
        raise FakeLocatorError("--native needs --n N >= 1")
    cfg = NativeSetConfig(n=args.n, seed=1 if args.seed is None else args.seed, families=args.native_families or (),
                          post=args.native_post, **({"sizes": args.native_sizes} if args.native_sizes else {}),
                          photos=tuple(os.path.abspath(os.path.expanduser(p)) for p in args.photos or ()),
                          bundled=not args.no_bundled)
    counts = write_native_set(args.out, cfg, overwrite=args.overwrite)
    print(f"wrote {sum(counts.values())} images to {args.out}: {counts['real']} real, {counts['partial']} partial, "
          f"{counts['entire']} entire")
    return 0


def run(args: argparse.Namespace) -> int:
    from fakelocator.training.synth import generate, write_contact_sheet

    if args.native:
        return run_native(args)

    config = config_from_args(args)
    if args.workers is not None and args.workers < 1:
        raise FakeLocatorError(f"--workers must be >= 1, got {args.workers}")
    summary = generate(args.out, config, workers=args.workers, overwrite=args.overwrite,
                       progress=not args.quiet and sys.stderr.isatty())
    for note in summary.notes:
        print(f"skipped {note}", file=sys.stderr)
    total = sum(summary.images.values())
    print(f"wrote {total} images to {summary.out_dir}: {summary.images['real']} real, "
          f"{summary.images['partial']} partial, {summary.images['entire']} entire "
          f"from {len(summary.photos)} photos")
    print(f"{summary.seconds:.1f} s with {summary.workers} worker(s): {summary.images_per_second:.1f} images/s")
    if args.sheet:
        sheet = write_contact_sheet(summary.out_dir, summary.out_dir / "examples.png")
        print(f"contact sheet: {sheet}")
    return 0
