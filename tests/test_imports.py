"""Import isolation: ``import tokentree`` pulls in no torch, transformers or sympy (like jaxtyping's
test_no_jax_dependency), plus a meta-test showing that the check can fail."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "sympy")

CHECK = """
import sys
{imports}
bad = sorted(m for m in {heavy!r} if m in sys.modules)
print(",".join(bad))
sys.exit(1 if bad else 0)
"""


def run_check(imports: str) -> subprocess.CompletedProcess:
    code = CHECK.format(imports=imports, heavy=HEAVY)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["tokentree", "tokentree.demo", "tokentree.harness", "tokentree.sim"])
def test_import_tokentree_leaves_heavy_packages_out(module):
    proc = run_check(f"import {module}")
    assert proc.returncode == 0, f"{module} imported {proc.stdout.strip()}\n{proc.stderr}"


def test_the_isolation_check_can_fail():
    proc = run_check("import tokentree\nimport sympy")
    assert proc.returncode == 1 and proc.stdout.strip() == "sympy", proc.stdout + proc.stderr


def test_import_tokentree_does_not_import_matplotlib():
    proc = subprocess.run([sys.executable, "-c", "import sys, tokentree, tokentree.demo; "
                           "sys.exit('matplotlib' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_name_in_all_is_the_core_object_of_that_name():
    """Each public name is defined in a core module under the same name (no alias of a helper, no
    third-party object, nothing from the harness or the simulator's wing)."""
    import tokentree

    for name in tokentree.__all__:
        obj = getattr(tokentree, name)
        module = obj.__module__
        assert module.startswith("tokentree.") and not module.startswith(("tokentree.harness", "tokentree.sim")), \
            (name, module)
        assert obj.__name__ == name, (name, obj.__name__)


def test_init_holds_only_explicit_re_exports():
    import ast
    import pathlib

    import tokentree

    tree = ast.parse(pathlib.Path(tokentree.__file__).read_text(encoding="utf-8"))
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert alias.asname == alias.name, f"use 'import {alias.name} as {alias.name}'"
                exported.add(alias.name)
        else:
            assert isinstance(node, (ast.Expr, ast.Assign)), ast.dump(node)[:80]
    assert exported == set(tokentree.__all__)
