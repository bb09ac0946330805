"""Compiled kernels built from ``cext/*.pyx``.

Import them through :func:`require` so that a missing build says how to fix it instead of
failing with a bare ``ModuleNotFoundError`` (there is deliberately no pure-Python fallback).
"""

from importlib import import_module
from types import ModuleType

BUILD_HINT = (
    "the compiled module alys_fast._cext.{name} is missing: build the extensions with "
    "`pip install -e '.[test]'` (or `python setup.py build_ext --inplace`) from the repository root"
)


def require(name: str) -> ModuleType:
    """Import the compiled kernel ``name`` or raise an ImportError that says how to build it."""
    try:
        return import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise ImportError(BUILD_HINT.format(name=name)) from exc
