"""Packages the import name `fakelocator`, whose parts live in the repository's top-level folders.

`fakelocator.training` lives in `training/`, `fakelocator.runtime` in `runtime/` and so on, so each
part of the project has one obvious folder. `fakelocator/` holds a relative symbolic link to each of
them (`fakelocator/runtime -> ../runtime`, ...), so the checkout itself is the package: Python run in
the repository root, PYTHONPATH=<checkout>, pyright and other static tools resolve `fakelocator.runtime`
to the same files as an installed copy (a wheel holds the files the links point to). Sub-packages are
discovered, not listed (setuptools' finder follows the links).
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["fakelocator", "fakelocator.*"]))
