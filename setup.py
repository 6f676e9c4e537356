"""Packaging that pyproject.toml cannot say alone: the top-level `metadata/` folder (built-in vocabulary
facts) ships inside the package as `detic_cli.metadata`, next to every `detic_cli*` package found.
Everything else (name, dependencies, package data) is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["detic_cli", "detic_cli.*"]), "detic_cli.metadata"],
    package_dir={"detic_cli.metadata": "metadata"},
)
