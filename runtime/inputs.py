"""``trt-locate``'s inputs: expanding arguments into files, and naming each file's outputs.

An argument is

- ``-``: a list of inputs, one per line, read from stdin (relative entries: from the current folder);
- a ``.txt`` / ``.lst`` / ``.list`` file: a list of inputs, one per line (relative entries: from the
  list file's folder); blank lines and lines starting with ``#`` are skipped; a UTF-8 byte-order
  mark is ignored; names that are not UTF-8 are read as the file system stores them; a line that
  cannot be a path (a NUL byte, binary junk) becomes an input with its error, like a missing file;
- a folder: every image and video under it, recursively, sorted (hidden files and folders are
  skipped; a subfolder that cannot be listed becomes an input with its error, e.g. "permission
  denied");
- a glob (``*``, ``?``, ``[``; ``**`` recurses) that matches no file literally;
- any other path: one image, or a video when its suffix is a video suffix. Whether it is really an
  image is found out when it is decoded.

Arguments that name nothing (a missing path, a glob without matches, a folder without images)
become inputs with an error, recorded like any other bad input. The same file named twice is
processed once.

Nothing inside the output folder is ever an input (a run would otherwise read its own maps, and
every ``--resume`` would find more of them): folders and globs skip it, and a path inside it given
explicitly becomes an input with an error.

Output keys. An input's outputs are named by its path without its suffix: ``a/b.jpg`` →
``maps/a/b.png``; a video ``v/c.mp4`` → ``maps/v/c/000012.png``. Paths outside the current folder
(absolute, or climbing with ``..``) keep their absolute path under ``_abs``: ``/data/x.jpg`` →
``maps/_abs/data/x.png``. When two inputs would share a name (``a/b.jpg`` and ``a/b.png``, or a
video's frame folder and an image under it), each of them keeps its suffix in its key
(``maps/a/b.jpg.png``, ``maps/a/b.png.png``); any remaining clash gets ``~2``, ``~3``… With
``--resume``, the keys the journal already holds count too: an input keeps the key it was recorded
with, and no other input is given it. A name whose output file name would exceed 255 bytes is
shortened to its start, ``~`` and a hash of the whole name.
"""

from __future__ import annotations

import glob
import os
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Iterable, TextIO

from fakelocator.runtime.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_video_path

LIST_SUFFIXES = (".txt", ".lst", ".list")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Input:
    path: str  # as recorded in results.jsonl: the user's spelling, normalized
    kind: str  # "image" | "video"
    key: str = ""  # output key (see the module docstring)
    error: str | None = None  # set when the argument named nothing usable


def expand(
    args: Iterable[str], *, stdin: TextIO | None = None, exclude: str | os.PathLike | None = None, cwd: str | None = None
) -> list[Input]:
    """Arguments → inputs in argument order, deduplicated, with output keys assigned."""
    cwd = cwd or os.getcwd()
    excluded = os.path.realpath(exclude) if exclude is not None else None
    found: list[Input] = []
    for arg in args:
        found.extend(_expand_one(arg, stdin=stdin or sys.stdin, excluded=excluded, base=None, nested=False))
    unique, seen = [], set()
    for item in found:
        if item.error is None and _inside(item.path, excluded):
            item = replace(item, error="is inside the output folder (--out); outputs are never taken as inputs")
        ident = os.path.realpath(item.path) if item.error is None else ("error", item.path)
        if ident in seen:
            continue
        seen.add(ident)
        unique.append(item)
    return assign_keys(unique, cwd)


def _expand_one(arg: str, *, stdin: TextIO, excluded: str | None, base: str | None, nested: bool) -> list[Input]:
    if "\0" in arg:
        return [Input(_shown(arg), "image", error="a path cannot contain a NUL byte")]
    if arg == "-" and not nested:
        return _expand_list(_list_lines(_read_stdin(stdin)), stdin=stdin, excluded=excluded, base=None)
    path = os.path.normpath(os.path.join(base, arg)) if base and not os.path.isabs(arg) else os.path.normpath(arg)
    if os.path.isdir(path):
        if _inside(path, excluded):
            return [Input(path, "image", error="is the output folder (--out) or inside it; outputs are never taken as inputs")]
        found = list(_walk(path, excluded))
        if not found:
            return [Input(path, "image", error="folder has no images or videos")]
        return found
    if os.path.isfile(path) and Path(path).suffix.lower() in LIST_SUFFIXES and not nested:
        try:
            lines = _list_lines(Path(path).read_bytes())
        except OSError as e:
            return [Input(path, "image", error=f"list file cannot be read ({e.strerror or e})")]
        return _expand_list(lines, stdin=stdin, excluded=excluded, base=os.path.dirname(path))
    missing = _missing(path)
    if missing == "no such file" and _GLOB_CHARS & set(arg):
        pattern = os.path.join(base, arg) if base and not os.path.isabs(arg) else arg
        matches = sorted(glob.glob(pattern, recursive=True))
        found = [Input(os.path.normpath(m), _kind(m)) for m in matches
                 if not os.path.isdir(m) and _wanted(m) and not _inside(m, excluded)]
        for m in matches:
            if os.path.isdir(m) and not _inside(m, excluded):
                found.extend(_walk(os.path.normpath(m), excluded))
        if not found:
            return [Input(arg, "image", error="no image or video matches this pattern")]
        return found
    if missing is not None:
        return [Input(path, _kind(path), error=missing)]
    return [Input(path, _kind(path))]


def _read_stdin(stdin: TextIO) -> bytes:
    """stdin's bytes (its text layer would fail on a name that is not UTF-8)."""
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        return buffer.read()
    text = stdin.read()
    return text if isinstance(text, bytes) else os.fsencode(text)


def _list_lines(data: bytes) -> list[str]:
    """A list file's entries, one per line: a UTF-8 byte-order mark at the start is dropped, and each
    line is decoded as the file system decodes names (UTF-8, bytes that are not kept as they are:
    a Latin-1 name in a list still names its file)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return [os.fsdecode(line) for line in data.splitlines()]


def _shown(text: str) -> str:
    """A name for a record: NUL bytes and names that are not text shown escaped."""
    return text.replace("\0", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


def _missing(path: str) -> str | None:
    """None when ``path`` exists; else why it cannot be seen (``no such file``, ``permission denied``...)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return "no such file"
    except PermissionError:
        return "permission denied"
    except NotADirectoryError:
        return "no such file (a parent is not a folder)"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return None


def _inside(path: str, folder: str | None) -> bool:
    """Whether ``path`` is ``folder`` or under it (symlinks resolved)."""
    if folder is None:
        return False
    real = os.path.realpath(path)
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _expand_list(lines: list[str], *, stdin: TextIO, excluded: str | None, base: str | None) -> list[Input]:
    out = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.extend(_expand_one(entry, stdin=stdin, excluded=excluded, base=base, nested=True))
    return out


def _walk(folder: str, excluded: str | None) -> list[Input]:
    """Images and videos under ``folder`` in sorted order, and an error input for every subfolder
    that cannot be listed (an unreadable folder hides its files; it must not hide them silently)."""
    out: list[Input] = []

    def failed(e: OSError) -> None:  # called by os.walk where the listing fails, so the order is kept
        where = os.path.normpath(e.filename) if e.filename else folder
        reason = "permission denied" if isinstance(e, PermissionError) else f"cannot be read ({e.strerror or e})"
        out.append(Input(where, "image", error=f"folder {reason}; its files cannot be listed"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=failed):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not _inside(os.path.join(dirpath, d), excluded)
        )
        for name in sorted(filenames):
            if not name.startswith(".") and _wanted(name):
                out.append(Input(os.path.join(dirpath, name), _kind(name)))
    return out


def _wanted(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    return suffix in IMAGE_EXTENSIONS or suffix in VIDEO_EXTENSIONS


def _kind(path: str) -> str:
    return "video" if is_video_path(path) else "image"


def base_key(path: str, cwd: str) -> PurePosixPath:
    """The output key of ``path`` before clash resolution, suffix included."""
    p = os.path.normpath(path)
    if not os.path.isabs(p) and p != ".." and not p.startswith(".." + os.sep):
        return PurePosixPath(Path(p).as_posix())
    absolute = Path(os.path.normpath(os.path.join(cwd, p)))
    try:
        return PurePosixPath(absolute.relative_to(cwd).as_posix())
    except ValueError:
        return PurePosixPath("_abs") / absolute.relative_to(absolute.anchor).as_posix()


#: The longest file name most file systems take (NAME_MAX), in bytes.
NAME_MAX = 255
#: What output names add to a key's last part: ``.png`` / ``.jpg``.
OUTPUT_SUFFIX_BYTES = 4


def fit_name(key: str) -> str:
    """``key`` with its last part shortened, if it must be, so that ``<last part>.png`` fits NAME_MAX
    bytes: its start, ``~`` and 10 hex digits of its SHA-1 (two long names that differ only at
    their ends stay apart)."""
    head, _, last = key.rpartition("/")
    raw = os.fsencode(last)
    room = NAME_MAX - OUTPUT_SUFFIX_BYTES
    if len(raw) <= room:
        return key
    import hashlib

    digest = hashlib.sha1(raw).hexdigest()[:10]
    keep = raw[: room - len(digest) - 1]
    while keep and (keep[-1] & 0xC0) == 0x80:  # do not cut a UTF-8 character in two
        keep = keep[:-1]
    if keep and keep[-1] >= 0xC0:
        keep = keep[:-1]
    short = os.fsdecode(keep) + "~" + digest
    return f"{head}/{short}" if head else short


def assign_keys(inputs: list[Input], cwd: str, *, taken: dict[str, str] | None = None) -> list[Input]:
    """Output keys for ``inputs`` (see the module docstring).

    ``taken``: {key: input path} of the keys an earlier run recorded in the same output folder
    (``--resume``): an input keeps the key recorded for it, and no other input gets one of them, so
    a resumed run never writes over the maps of the inputs it skips.
    """
    taken = dict(taken or {})
    owned = {path: key for key, path in taken.items()}
    taken_folders = {str(parent) for key in taken for parent in PurePosixPath(key).parents}
    full = [str(base_key(i.path, cwd)) for i in inputs]
    stems = [str(PurePosixPath(k).with_suffix("")) if PurePosixPath(k).suffix else k for k in full]
    counts = Counter(stems)
    image_folders = {str(parent) for s, i in zip(stems, inputs) if i.kind == "image" for parent in PurePosixPath(s).parents}
    out, used = [], set(taken)

    def free(candidate: str, item: Input) -> bool:
        if candidate in used:
            return False
        return item.kind != "video" or candidate not in taken_folders  # a video's frames go in a folder named so

    for item, name, stem in zip(inputs, full, stems):
        if item.path in owned:
            out.append(replace(item, key=owned[item.path]))
            continue
        clash = counts[stem] > 1 or stem in taken
        if item.kind == "video":  # its frames go in a folder named like its stem
            clash = clash or stem in image_folders or stem in taken_folders
        key = name if clash else stem
        candidate, n = fit_name(key), 1
        while not free(candidate, item):
            n += 1
            candidate = fit_name(f"{key}~{n}")
        used.add(candidate)
        out.append(replace(item, key=candidate))
    return out
