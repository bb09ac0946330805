"""The import layers are a fact: `.importlinter`'s contract holds and lists every package."""

from __future__ import annotations

import configparser
import subprocess

from tests.conftest import ROOT


def layered_modules() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    return {name for name in layers.split() if name != "|"}


def test_every_package_of_alys_fast_has_a_layer():
    package = ROOT / "alys_fast"
    modules = {
        f"alys_fast.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules - layered_modules() == set(), "add these to .importlinter's layers"


def test_imports_follow_the_layers():
    result = subprocess.run(
        ["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
