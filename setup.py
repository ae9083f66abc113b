"""Maps the import name `fakelocator` onto the repository's top-level folders.

`fakelocator.training` lives in `training/`, `fakelocator.runtime` in `runtime/` and so on, so each
part of the project has one obvious folder. Sub-packages are discovered, not listed.
"""

from setuptools import find_packages, setup

ROOTS = {
    "fakelocator": "fakelocator",
    "fakelocator.training": "training",
    "fakelocator.export": "export",
    "fakelocator.runtime": "runtime",
    "fakelocator.evaluation": "evaluation",
    "fakelocator.benchmarks": "benchmarks",
}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
