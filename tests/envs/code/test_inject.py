"""Bug injection: every mutation is a one-line, syntactically valid change that its inverse undoes."""

from __future__ import annotations

import ast
import collections

import pytest

from agentkit.envs.code.inject import (
    OPERATORS,
    available_projects,
    interleave,
    mutations_of_source,
    project_mutations,
)

SOURCE = '''\
def window(xs, k):
    """Sum of the first k items, or None."""
    if k <= 0 or not xs:
        return None
    total = 0
    for i in range(k):
        total += xs[i]
    return min(total, max(xs)) if total > 1 else -1


def flag(x):
    return x is not None and True
'''


def test_each_operator_produces_valid_single_line_mutations():
    mutations = mutations_of_source("demo", "demo/core.py", SOURCE)
    kinds = collections.Counter(m.operator for m in mutations)
    for operator in (
        "wrong_operator",
        "wrong_comparison",
        "off_by_one",
        "dropped_condition",
        "negated_condition",
        "swapped_arguments",
        "wrong_return",
        "wrong_builtin",
        "wrong_constant",
    ):
        assert kinds[operator], operator
    for mutation in mutations:
        buggy = mutation.apply(SOURCE)
        ast.parse(buggy)
        assert ast.dump(ast.parse(buggy)) != ast.dump(ast.parse(SOURCE)), mutation
        assert sum(a != b for a, b in zip(SOURCE.splitlines(), buggy.splitlines(), strict=True)) == 1
        old, new = mutation.fix_patch(buggy)
        assert buggy.count(old) == 1 and buggy.replace(old, new) == SOURCE
        assert mutation.function in ("window", "flag")


def test_mutations_keep_precedence():
    mutations = mutations_of_source("demo", "demo/m.py", "def f(a, b, c):\n    return a - b * c\n")
    texts = {m.new.strip() for m in mutations}
    assert "return a - (b + c)" in texts  # not "a - b + c", which would be another bug
    assert "return a + b * c" in texts


def test_known_mutations():
    joined = "\n".join(m.new for m in mutations_of_source("demo", "demo/core.py", SOURCE))
    for expected in (
        "if k < 0 or not xs:",
        "if k <= 1 or not xs:",
        "total -= xs[i]",
        "if k <= 0:",
        "if not xs:",
        "return max(total, max(xs)) if",
        "return min(max(xs), total) if",
        "if total >= 1 else",
        "else -2",
        "return x is not None and False",
        "return x is None and True",
    ):
        assert expected in joined, expected


def test_mutation_ids_are_stable_and_distinct():
    first = mutations_of_source("demo", "demo/core.py", SOURCE)
    second = mutations_of_source("demo", "demo/core.py", SOURCE)
    assert [m.id for m in first] == [m.id for m in second]
    assert len({m.id for m in first}) == len(first)


@pytest.mark.parametrize("project", available_projects(), ids=lambda p: p.name)
def test_shipped_projects_have_many_mutations_and_never_touch_tests(project):
    mutations = project_mutations(project)
    assert len(mutations) >= 60
    assert {m.operator for m in mutations} >= {
        "wrong_operator",
        "wrong_comparison",
        "off_by_one",
        "wrong_return",
    }
    assert all(not m.file.startswith("tests/") for m in mutations)
    assert set(OPERATORS) >= {m.operator for m in mutations}


def test_interleave_blocks():
    assert interleave([[1, 2, 3], [4], [5, 6]], block=2) == [1, 2, 4, 5, 6, 3]
    assert interleave([[1, 2], [3, 4]]) == [1, 3, 2, 4]
