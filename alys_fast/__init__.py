"""alys-fast: a node for the Alys Bitcoin sidechain with a compiled hot path."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alys-fast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
