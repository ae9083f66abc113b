"""The project's installs hold one OpenCV distribution (opencv-python-headless) and never mediapipe."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Distributions that would install a second ``cv2`` beside opencv-python-headless (they unpack
#: into one folder and overwrite each other's files), or pull one in.
OTHER_OPENCV = ("opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless", "facexlib", "mediapipe")


def requirement_names() -> dict[str, set[str]]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": extras["dependencies"], **extras["optional-dependencies"]}
    return {group: {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs} for group, reqs in groups.items()}


def test_every_extra_uses_opencv_python_headless_and_nothing_that_pulls_another_opencv():
    for group, names in requirement_names().items():
        assert not names & set(OTHER_OPENCV), (group, names & set(OTHER_OPENCV))
        if any(n.startswith("opencv") for n in names):
            assert "opencv-python-headless" in names, group


def test_facexlib_is_installed_without_its_opencv_python():
    script = (ROOT / "scripts" / "ensure-venv").read_text()
    assert "--no-deps 'facexlib==0.3.0'" in script
    train = requirement_names()["train"]
    assert {"filterpy", "numba", "scipy", "torch", "torchvision", "pillow", "tqdm"} <= train, \
        "facexlib's own imports, listed since it is installed without dependencies"
