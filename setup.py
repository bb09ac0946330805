"""Build the compiled kernels: every ``cext/*.pyx`` becomes ``alys_fast._cext.<name>``, and the
Rust crate ``cext/evm`` (revm and the state trie, PyO3) becomes ``alys_fast._cext.evm``.

The Python packages import these modules directly; there is no pure-Python fallback,
so a missing build fails loudly (see ``alys_fast/_cext/__init__.py``).
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools_rust import Binding, RustExtension

ROOT = Path(__file__).parent
CEXT = ROOT / "cext"


def extensions() -> list[Extension]:
    return [
        Extension(
            f"alys_fast._cext.{pyx.stem}",
            [str(pyx.relative_to(ROOT))],
            include_dirs=[str((CEXT / "include").relative_to(ROOT)), "cext"],
            extra_compile_args=["-O3"],
        )
        for pyx in sorted(CEXT.glob("*.pyx"))
    ]


setup(
    rust_extensions=[
        RustExtension(
            "alys_fast._cext.evm",
            path="cext/evm/Cargo.toml",
            binding=Binding.PyO3,
            debug=False,
        )
    ],
    ext_modules=cythonize(
        extensions(),
        language_level=3,
        include_path=["cext"],
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
)
