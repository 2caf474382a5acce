"""The package's shape: small modules, light import, a docstring that lists every module."""
import subprocess
import sys
from pathlib import Path

import sparsevd_lab

PACKAGE = Path(sparsevd_lab.__file__).parent


def test_no_module_over_600_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}, f"split these modules by job (issue 14): {long}"


def test_import_does_not_load_the_build_tools():
    """The notebook executor and the assignment builder (nbclient, jupytext: the dev extra) stay out
    of ``import sparsevd_lab``; their ``python -m`` commands still work."""
    code = ("import sys, sparsevd_lab; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nbclient', 'jupytext', 'nbformat') "
            "or m in ('sparsevd_lab.notebook', 'sparsevd_lab.assignments')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    for module in ("sparsevd_lab.notebook", "sparsevd_lab.assignments"):
        help_ = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert help_.returncode == 0 and "usage" in help_.stdout.lower()


def test_package_docstring_lists_every_module():
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    missing = sorted(n for n in names if f"``{n}``" not in sparsevd_lab.__doc__)
    assert missing == []


def test_compression_subpackage_and_compress_function_have_their_own_names():
    """``import sparsevd_lab.compression as C`` gives the subpackage (issue 20, 6); ``sv.compress`` stays
    the function."""
    import importlib

    C = importlib.import_module("sparsevd_lab.compression")
    assert C.__name__ == "sparsevd_lab.compression" and callable(C.save_compressed)
    assert callable(sparsevd_lab.compress) and sparsevd_lab.compress is C.compress
    assert sparsevd_lab.compression is C
