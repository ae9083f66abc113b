"""Face-parsing label maps cached on disk next to the dataset.

Parsing is the expensive step (a 13 M-parameter network at 512 × 512) and does not depend on the
property, so it is what we cache; the attention map itself is made from the labels on the fly
(a distance transform, about a millisecond). Layout:

    ROOT/.attention/<parser>/<rel>.png      e.g. ROOT/.attention/bisenet/fake/hair/0001.png.png

``<rel>`` is the image's path relative to its dataset root (the image's own suffix is kept, so
``a.jpg`` and ``a.png`` do not collide); images outside the root go under ``_abs/``. With
``cache_dir``, maps go to ``cache_dir/<parser>/<hash of ROOT>/<rel>.png`` instead (for read-only
datasets). Each file is an 8-bit PNG of canonical labels at the parser's resolution, with a
``fakelocator.parsing`` text chunk recording the image's size and modification time and the
parser's identity: an image that changed, or weights that changed, make the entry stale and it is
parsed again. Files are written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_path

CACHE_FOLDER = ".attention"
KEY = "fakelocator.parsing"


def image_key(image: Path, parser: str, identity: str | None) -> dict:
    st = os.stat(image)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "parser": parser, "identity": identity}


class ParsingCache:
    """Where each image's label map lives, and reading/writing it.

    Args:
        parser: the parser's name (a folder level: maps of different parsers never mix).
        cache_dir: a folder for every dataset's maps instead of ``ROOT/.attention``.
    """

    def __init__(self, parser: str, cache_dir: str | os.PathLike | None = None):
        self.parser = parser
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def path(self, image: Path, root: Path | None) -> Path:
        image = Path(os.path.abspath(image))
        root = Path(os.path.abspath(root)) if root is not None else image.parent
        try:
            rel = image.relative_to(root)
        except ValueError:
            rel = Path("_abs", *image.parts[1:])
        if self.cache_dir is None:
            base = root / CACHE_FOLDER / self.parser
        else:
            base = self.cache_dir / self.parser / hashlib.sha1(str(root).encode()).hexdigest()[:12]
        return base / rel.parent / (rel.name + ".png")

    def read(self, image: Path, root: Path | None, identity: str | None) -> np.ndarray | None:
        """The cached uint8 label map, or None when missing or stale. ``identity=None`` accepts any
        parser weights (used when the weights are not at hand but the maps are)."""
        from PIL import Image

        path = self.path(image, root)
        if not path.is_file():
            return None
        try:
            with Image.open(path) as im:
                stored = json.loads(im.text.get(KEY, "null") or "null")
                want = image_key(image, self.parser, identity)
                if not isinstance(stored, dict):
                    return None
                if identity is None:
                    stored = {**stored, "identity": None}
                if stored != want:
                    return None
                return np.asarray(im.convert("L"), dtype=np.uint8)
        except (OSError, ValueError):
            return None  # unreadable or half-written by something else: parse again

    def write(self, image: Path, root: Path | None, identity: str, labels: np.ndarray) -> Path:
        from PIL import Image, PngImagePlugin

        path = self.path(image, root)
        info = PngImagePlugin.PngInfo()
        info.add_text(KEY, json.dumps(image_key(image, self.parser, identity), sort_keys=True))
        try:
            with atomic_path(path, prefix=".tmp-", suffix=".png") as tmp:
                Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8)).save(tmp, format="PNG", pnginfo=info)
        except OSError as e:
            raise FakeLocatorError(
                f"cannot write the face-parsing cache {path} ({e.strerror or e}); choose a writable folder "
                "with --attention-cache DIR"
            ) from None
        return path
