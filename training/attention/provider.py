"""The face-attention provider the training dataset calls (``FakeLocatorDataset(attention_provider=)``).

For a sample with property p it returns Blur(FPM(X', p)) at the image's resolution (Sec. IV-C):
the image's face parsing (cached, ``cache.py``) → the region of p (``labels.py``) → the widened,
floored map (``maps.py``). It returns the white map (all ones, what inference uses) for entire
syntheses, for properties without a facial region (``ellipse``, ``blob``) and when the parser finds
no pixel of the region (e.g. ``Bald`` on a fake whose hair is gone).

**Real images get a property too.** If reals got the white map and fakes a shaped one, the map
itself would tell the network which is which, and at inference (white map always) it would see
"real". So each real image borrows the property of a fake made from it (its pair's region, on its
own face), or, without one, a property drawn (deterministically, by path) from the fakes'
properties. Attention then carries no label information, only where to look.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.training.attention.cache import ParsingCache
from fakelocator.training.attention.labels import (
    PROPERTY_REGIONS, RegionSpec, UnknownPropertyError, region_mask, region_spec,
)
from fakelocator.training.attention.maps import DEFAULT_FLOOR, DEFAULT_SPREAD, attention_map, check_blur
from fakelocator.training.attention.parsing import (
    Parser, FaceParser, check_model, file_digest, find_parsing_weights, missing_weights_message, resolve_model,
)
from fakelocator.training.samples import Sample, read_image

log = logging.getLogger(__name__)

ATTENTION_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class AttentionConfig:
    """Face-parsing attention for training (Sec. IV-C); part of ``TrainConfig``.

    Args:
        mode: ``auto`` (on when a training sample names a facial property and a parser can make
            its maps; otherwise off, with a warning), ``on`` (required: an error if no sample names
            one or a facexlib parser's weights are missing), ``off``.
        parser: ``auto`` (BiSeNet when its weights are found, else ``mesh``), ``bisenet`` or
            ``parsenet`` (facexlib, local weights), ``mesh`` (MediaPipe's face mesh, shipped in
            the package: ``mesh.py``).
        weights: a facexlib parser's weights file; empty: ``$FAKELOCATOR_PARSING_WEIGHTS``, then
            facexlib's weights folder. Never downloaded.
        cache_dir: where parsing maps are cached; empty: ``ROOT/.attention`` of each dataset.
        spread: sigma of the fall-off around the region, as a fraction of the image's shorter side.
        floor: the attention far from the region (0 < floor < 1 keeps the rest of the image in play).
    """

    mode: str = "auto"
    parser: str = "auto"
    weights: str | None = None
    cache_dir: str | None = None
    spread: float = DEFAULT_SPREAD
    floor: float = DEFAULT_FLOOR

    def __post_init__(self):
        if isinstance(self.mode, bool):  # YAML 1.1 reads an unquoted `off`/`on` as a boolean
            object.__setattr__(self, "mode", "on" if self.mode else "off")
        if self.mode not in ATTENTION_MODES:
            raise FakeLocatorError(f"attention mode must be one of {', '.join(ATTENTION_MODES)}, got {self.mode!r}")
        check_model(self.parser)
        check_blur(self.spread, self.floor)
        for name in ("weights", "cache_dir"):
            value = getattr(self, name)
            object.__setattr__(self, name, str(value) if value not in (None, "") else None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AttentionConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise FakeLocatorError(f"attention config has unknown fields {sorted(unknown)}")
        return cls(**d)


def _norm(path: Path | None) -> str:
    return os.path.normpath(os.path.abspath(path)) if path is not None else ""


def _needs_region(spec: RegionSpec | None) -> bool:
    return spec is not None and not spec.everything


def assign_properties(samples: Sequence[Sample]) -> dict[str, str]:
    """{image path: the property whose region its attention map shows}; see the module docstring."""
    by_real: dict[str, list[str]] = {}
    pool = []
    for s in samples:
        if s.kind == "partial":
            by_real.setdefault(_norm(s.real), []).append(s.property)
        if s.kind != "real":
            pool.append(s.property)
    pool.sort()
    assigned = {}
    for s in samples:
        key = _norm(s.image)
        if s.kind != "real":
            assigned[key] = s.property
            continue
        choices = sorted(by_real.get(key, ())) or pool
        assigned[key] = choices[zlib.crc32(key.encode()) % len(choices)] if choices else ""
    return assigned


@dataclass
class PrepareStats:
    images: int = 0  # images whose attention needs a parsing
    cached: int = 0
    parsed: int = 0
    no_region: int = 0  # among the parsed: the parser found none of the property's region
    seconds: float = 0.0


class FaceAttention:
    """``attention_provider(sample, image)`` for ``FakeLocatorDataset``.

    Args:
        samples: the training samples (used to give real images a property, see the module docstring).
        parser: a ready parser (``FaceParser``, or any object with ``name``, ``identity``, ``parse``);
            when None, a ``FaceParser`` is loaded from ``weights`` the first time a map is missing.
        model: the parser to load from ``weights`` (``bisenet`` or ``parsenet``).
        weights: the parser's weights file, or None (then every needed map must be in the cache).
        cache_dir: see ``ParsingCache``.
        spread, floor: the blur (``maps.attention_map``).
        table: property → region, default ``labels.PROPERTY_REGIONS``.
        looked: where the weights were looked for (for the error when they are needed and missing).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        parser: Parser | None = None,
        model: str = "bisenet",
        weights: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        spread: float = DEFAULT_SPREAD,
        floor: float = DEFAULT_FLOOR,
        table: dict[str, RegionSpec] | None = None,
        looked: Sequence[str] = (),
    ):
        check_blur(spread, floor)
        self.table = PROPERTY_REGIONS if table is None else table
        self.specs = specs_of(samples, self.table)
        self.assigned = assign_properties(samples)
        self.samples = list(samples)
        self.model = parser.name if parser is not None else model
        self.weights = Path(weights) if weights is not None else None
        self.parser = parser
        self._own_parser = parser is None
        if parser is not None:
            self.identity = parser.identity
        elif self.weights is not None:
            self.identity = f"{model}:{file_digest(self.weights)}"
        else:
            self.identity = None  # no weights: accept cached maps of any weights
        self.cache = ParsingCache(self.model, cache_dir)
        self.spread, self.floor = spread, floor
        self.looked = list(looked)

    # ---- what each sample shows -----------------------------------------------------------------

    def property_of(self, sample: Sample) -> str:
        return self.assigned.get(_norm(sample.image), sample.property)

    def spec_of(self, sample: Sample) -> RegionSpec | None:
        prop = self.property_of(sample)
        return self.specs[prop] if prop in self.specs else region_spec(prop, self.table)

    def needs_parsing(self, sample: Sample) -> bool:
        return _needs_region(self.spec_of(sample))

    # ---- the provider ---------------------------------------------------------------------------

    def __call__(self, sample: Sample, image: np.ndarray) -> np.ndarray:
        """float32 (H, W) attention in [floor, 1] for ``image`` (uint8 RGB (H, W, 3) as read)."""
        h, w = image.shape[:2]
        spec = self.spec_of(sample)
        if not _needs_region(spec):
            return np.ones((h, w), np.float32)
        labels = self.labels(sample, image)
        mask = region_mask(labels, spec)
        if mask is None or not mask.any():
            return np.ones((h, w), np.float32)
        return attention_map(mask, h, w, spread=self.spread, floor=self.floor)

    def labels(self, sample: Sample, image: np.ndarray | None = None) -> np.ndarray:
        """The image's canonical label map, from the cache or parsed now (and cached)."""
        cached = self.cache.read(sample.image, sample.root, self.identity)
        if cached is not None:
            return cached
        parser = self._parser(needed=1, example=str(sample.image))
        labels = parser.parse([read_image(sample.image) if image is None else image])[0]
        self.cache.write(sample.image, sample.root, parser.identity, labels)
        return labels

    def _parser(self, *, needed: int, example: str, device: str = "cpu") -> Parser:
        if self.parser is None:
            if self.weights is None:
                raise FakeLocatorError(missing_weights_message(self.model, self.looked or ["nowhere"], needed, example))
            self.parser = FaceParser.from_weights(self.model, self.weights, device=device)
        return self.parser

    def describe(self) -> dict:
        """For provenance: the parser, its weights' identity and the blur."""
        return {"parser": self.model, "identity": self.identity, "spread": self.spread, "floor": self.floor}

    # ---- parse everything once, before training -------------------------------------------------

    def prepare(self, *, device: str = "cpu", progress: Callable | None = None) -> PrepareStats:
        """Parse, on ``device``, every image whose map is not cached yet; raise now (not in a data
        worker mid-epoch) when that needs weights that are missing.

        ``progress(iterable, total=, desc=)`` wraps the parsing loop (e.g. a tqdm bar).
        """
        start = time.perf_counter()
        todo = [s for s in self.samples if self.needs_parsing(s)]
        stats = PrepareStats(images=len(todo))
        missing = [s for s in todo if self.cache.read(s.image, s.root, self.identity) is None]
        stats.cached = len(todo) - len(missing)
        if missing:
            parser = self._parser(needed=len(missing), example=str(missing[0].image), device=device)
            batch = max(1, getattr(parser, "batch_size", 8))
            chunks = [missing[i:i + batch] for i in range(0, len(missing), batch)]
            for chunk in progress(chunks, total=len(chunks), desc="face parsing") if progress else chunks:
                for s, labels in zip(chunk, parser.parse([read_image(s.image) for s in chunk])):
                    self.cache.write(s.image, s.root, parser.identity, labels)
                    mask = region_mask(labels, self.spec_of(s))
                    stats.no_region += mask is not None and not mask.any()
                    stats.parsed += 1
            if self._own_parser:
                self.parser = None  # free the device memory; a worker that misses loads its own on the CPU
        stats.seconds = time.perf_counter() - start
        return stats

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._own_parser:
            state["parser"] = None
        return state


def specs_of(samples: Sequence[Sample], table: dict[str, RegionSpec] | None = None) -> dict[str, RegionSpec | None]:
    """Every property's region; one error naming each unknown property, its count and an image."""
    table = PROPERTY_REGIONS if table is None else table
    specs: dict[str, RegionSpec | None] = {}
    unknown: dict[str, list[Path]] = {}
    for s in samples:
        if s.property in specs:
            continue
        if s.property in unknown:
            unknown[s.property].append(s.image)
            continue
        try:
            specs[s.property] = region_spec(s.property, table)
        except UnknownPropertyError:
            unknown[s.property] = [s.image]
    if unknown:
        listed = "; ".join(f"{p!r} ({len(v)} image(s), e.g. {v[0]})" for p, v in sorted(unknown.items()))
        raise UnknownPropertyError(
            f"face-parsing attention: unknown facial propert{'y' if len(unknown) == 1 else 'ies'} {listed}. "
            f"Known (case-insensitive, '+' joins several): {', '.join(sorted(table))}. Fix the manifest's "
            "property column (docs/data.md), or train without attention: --attention off"
        )
    return specs


def build_attention(
    config: AttentionConfig, samples: Sequence[Sample], *, device: str = "cpu", progress: Callable | None = None
) -> FaceAttention | None:
    """The provider ``config`` asks for, with every map parsed and cached; None when attention is off
    (``off``, or ``auto`` and no sample names a facial property)."""
    if config.mode == "off":
        return None
    specs = specs_of(samples)
    facial = sorted(p for p, spec in specs.items() if _needs_region(spec))
    if not facial:
        if config.mode == "on":
            raise FakeLocatorError(
                "--attention on, but no training sample names a facial property (the manifest's property column; "
                "see docs/data.md)"
            )
        log.info("face attention: off (no training sample names a facial property)")
        return None
    weights, looked = find_parsing_weights(config.parser, config.weights)
    model = resolve_model(config.parser, weights)
    if model == "mesh":
        from fakelocator.training.attention.mesh import MeshParser

        attention = FaceAttention(samples, parser=MeshParser(), cache_dir=config.cache_dir, spread=config.spread, floor=config.floor)
    else:
        attention = FaceAttention(
            samples, model=model, weights=weights, cache_dir=config.cache_dir,
            spread=config.spread, floor=config.floor, looked=looked,
        )
    if config.mode == "auto" and weights is None and model != "mesh":
        # auto never stops a run for weights nobody was asked for (the parsing weights are not
        # shipped and never downloaded): without them, and with images left to parse, train
        # without attention and say so; ``on`` makes the missing weights an error instead.
        uncached = [s for s in attention.samples if attention.needs_parsing(s)
                    and attention.cache.read(s.image, s.root, None) is None]
        if uncached:
            log.warning(
                "face attention: off: the manifest names facial properties (%s), but no %s parsing weights "
                "were found for %d image(s) (looked at: %s); give --parsing-weights PATH (docs/faces.md) "
                "and --attention on to require them",
                ", ".join(facial), model, len(uncached), "; ".join(looked),
            )
            return None
    stats = attention.prepare(device=device, progress=progress)
    log.info(
        "face attention (%s; properties %s): %d images need a parsing: %d cached, %d parsed in %.1f s%s",
        model, ", ".join(facial), stats.images, stats.cached, stats.parsed, stats.seconds,
        f"; {stats.no_region} of them without their region (white map)" if stats.no_region else "",
    )
    return attention
