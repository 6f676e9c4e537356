"""Suite hygiene: every test function can fail.

The guard parses (ast, nothing is imported or run) each test module under tests/ and lists the test functions
- `test_*` at module level or as methods of a `Test*` class - whose body holds none of: an `assert` statement,
a `pytest.raises` / `pytest.warns` call (plain or as a context manager), or a call of a helper whose name starts
with `assert_` or `check_` (`np.testing.assert_allclose`, `torch.testing.assert_close`, `assert_parity`, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
EXPECTING = {"raises", "warns"}
HELPER_PREFIXES = ("assert_", "check_")


def _called_name(call: ast.Call) -> tuple[str | None, str | None]:
    """(owner, name) of a call: `pytest.raises(...)` -> ("pytest", "raises"), `f(...)` -> (None, "f")."""
    func = call.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    return None, None


def _can_fail(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """True when the function's body (nested blocks and inner functions included) holds a check."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            owner, name = _called_name(node)
            if name is None:
                continue
            if name.startswith(HELPER_PREFIXES) or (owner == "pytest" and name in EXPECTING):
                return True
    return False


def _test_functions(tree: ast.Module):
    """The collected test functions of a module: `test_*` at top level and in `Test*` classes."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and node.name.startswith("test"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, functions) and item.name.startswith("test"):
                    yield f"{node.name}.{item.name}", item


def find_assertion_free_tests(root: Path) -> list[str]:
    """`path:line name` of every test function under `root` (test_*.py / *_test.py, recursively) that cannot
    fail by a check of its own; paths are relative to `root`, sorted."""
    offenders = []
    modules = sorted({*root.rglob("test_*.py"), *root.rglob("*_test.py")})
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, function in _test_functions(tree):
            if not _can_fail(function):
                offenders.append(f"{path.relative_to(root)}:{function.lineno} {name}")
    return offenders


def test_every_test_function_checks_something():
    offenders = find_assertion_free_tests(TESTS)
    assert not offenders, "test functions with no assert, pytest.raises/warns or assert_*/check_* call:\n  " + \
        "\n  ".join(offenders)


PLANTED = '''
import pytest
import numpy as np


def test_only_runs(tmp_path):
    (tmp_path / "x").write_text("y")


class TestGroup:
    def test_prints(self):
        print("no check here")

    def test_asserts(self):
        assert 1 + 1 == 2


def helper_without_test_prefix():
    pass
'''

GOOD = '''
import pytest
import numpy as np


def test_plain_assert():
    assert [1][0] == 1


def test_raises_as_context():
    with pytest.raises(ValueError, match="x"):
        raise ValueError("x")


def test_raises_called():
    pytest.raises(ZeroDivisionError, lambda: 1 / 0)


def test_warns():
    with pytest.warns(UserWarning):
        import warnings
        warnings.warn("w")


def test_numpy_helper():
    np.testing.assert_allclose([1.0], [1.0])


def test_fixture_helper(assert_close_to_case):
    assert_close_to_case(1, 1)


def test_check_helper():
    check_output = print
    check_output("ok")


async def test_async_assert():
    if True:
        for _ in range(1):
            assert True is not False
'''


def test_the_guard_flags_planted_assertion_free_tests(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_planted.py").write_text(PLANTED)
    (tmp_path / "test_good.py").write_text(GOOD)
    (tmp_path / "helpers.py").write_text("def test_not_collected():\n    pass\n")  # not a test module
    assert find_assertion_free_tests(tmp_path) == [
        f"{Path('sub/test_planted.py')}:6 test_only_runs",
        f"{Path('sub/test_planted.py')}:11 TestGroup.test_prints",
    ]


def test_the_guard_passes_a_module_of_good_tests(tmp_path):
    (tmp_path / "test_good.py").write_text(GOOD)
    assert find_assertion_free_tests(tmp_path) == []
    (tmp_path / "test_good.py").write_text(GOOD + "\n\ndef test_late():\n    x = 1\n")
    late = GOOD.count("\n") + 3  # GOOD's lines, a blank one, then the definition
    assert find_assertion_free_tests(tmp_path) == [f"{Path('test_good.py')}:{late} test_late"]
