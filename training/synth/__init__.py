"""Synthetic training data whose fakes carry GAN upsampling texture (paper Sec. III, issue 3).

From real photos (those installed packages ship, or the user's), make (real, fake) pairs: a soft
region of a real view is re-rendered by a GAN-like encoder–decoder with random weights — transposed
convolution, nearest, bilinear, bicubic, unpooling, stacks of them, small conv decoders — optionally
with a colour/brightness edit, and blended back; or the whole view is re-rendered (entire synthesis).
The recipe, its scale design and its limits are in ``docs/synthesis.md``.

Library API::

    from fakelocator.training.synth import SynthConfig, generate, synthesize_one
    generate("data/train", SynthConfig(n=20000, seed=0))           # dataset on disk
    real, fake, kind, prop, info = synthesize_one(photo, np.random.default_rng([1, i]), SynthConfig())

Native-scale building blocks for on-the-fly training (``docs/synthesis.md``, "Families for
native-scale training")::

    from fakelocator.training.synth import FAMILIES, blend, make_mask, postprocess, procedural_texture
    rng = np.random.default_rng([seed, i])
    mask = make_mask("strokes", real.shape[:2], rng)
    fake = blend(real, FAMILIES["gan_tconv"].make(real, rng), mask)
"""

from fakelocator.training.synth.config import SynthConfig
from fakelocator.training.synth.families import FAMILIES, HELD_OUT, Family, blend, sample_family, training_families
from fakelocator.training.synth.generate import COLUMNS, Summary, generate, item_kinds, prepare_photos
from fakelocator.training.synth.photos import BUNDLED, Photo, collect_photos, read_rgb
from fakelocator.training.synth.post import PostConfig, postprocess
from fakelocator.training.synth.shapes import SHAPES, make_mask, sample_shape
from fakelocator.training.synth.sheet import write_contact_sheet
from fakelocator.training.synth.synthesize import Sample, load_photo, synthesize_one
from fakelocator.training.synth.textures import procedural_texture

__all__ = [
    "BUNDLED", "COLUMNS", "FAMILIES", "HELD_OUT", "SHAPES", "Family", "Photo", "PostConfig", "Sample", "Summary",
    "SynthConfig", "blend", "collect_photos", "generate", "item_kinds", "load_photo", "make_mask", "postprocess",
    "prepare_photos", "procedural_texture", "read_rgb", "sample_family", "sample_shape", "synthesize_one", "training_families",
    "write_contact_sheet",
]
