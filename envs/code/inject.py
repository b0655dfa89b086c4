"""Bug injection with Python's ``ast``: small, realistic mutations of a project's source files.

Each mutation changes one expression on one line (a wrong operator, an off-by-one constant, a dropped
or negated condition, swapped arguments, a wrong comparison, a wrong return value, min/max swapped)
and is applied as text, so the rest of the file keeps its formatting. A mutation is kept as a task
only if some test of the project catches it (``agentkit.envs.code.repo.validate_mutations`` runs the tests of
each mutant in a sandbox and records fail-to-pass and pass-to-pass tests).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PROJECTS_DIR = Path(__file__).resolve().parent / "projects"

OPERATORS = ("wrong_operator", "wrong_comparison", "off_by_one", "dropped_condition", "negated_condition",
             "swapped_arguments", "wrong_return", "wrong_constant", "wrong_builtin")

_BINOP_SWAPS: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
                                  ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_COMPARE_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt,), ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt,),
    ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,)}
_BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass(frozen=True)
class Mutation:
    """One injected bug: ``old`` lines of ``file`` (unique in the original) become ``new``."""

    project: str
    file: str
    """Path inside the project, e.g. ``textstats/stats.py``."""
    operator: str
    line: int
    function: str | None
    old: str
    new: str
    detail: str

    @property
    def id(self) -> str:
        digest = hashlib.sha256(f"{self.project}\0{self.file}\0{self.line}\0{self.old}\0{self.new}".encode())
        return digest.hexdigest()[:10]

    def apply(self, source: str) -> str:
        """The original file text with the bug in it."""
        if source.count(self.old) != 1:
            raise ValueError(f"{self.file}: the original text of mutation {self.id} is not unique")
        return source.replace(self.old, self.new, 1)

    def fix_patch(self, buggy_source: str) -> tuple[str, str]:
        """``(old_str, new_str)`` for a unique-match str_replace that undoes the bug."""
        if buggy_source.count(self.new) != 1:
            raise ValueError(f"{self.file}: the buggy text of mutation {self.id} is not unique")
        return self.new, self.old

    def to_dict(self) -> dict:
        return asdict(self) | {"id": self.id}

    @classmethod
    def from_dict(cls, data: dict) -> Mutation:
        return cls(**{k: v for k, v in data.items() if k != "id"})


def _variants(node: ast.AST, parent: ast.AST | None) -> Iterator[tuple[str, ast.AST, str]]:
    """``(operator, replacement node, detail)`` for every mutation of ``node``."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
        new_op = _BINOP_SWAPS[type(node.op)]()
        yield "wrong_operator", ast.BinOp(node.left, new_op, node.right), \
            f"{type(node.op).__name__} -> {type(new_op).__name__}"
    if isinstance(node, ast.AugAssign) and type(node.op) in (ast.Add, ast.Sub):
        new_op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        yield "wrong_operator", ast.AugAssign(node.target, new_op, node.value), "augmented assignment flipped"
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAPS:
        for new_op in _COMPARE_SWAPS[type(node.ops[0])]:
            yield "wrong_comparison", ast.Compare(node.left, [new_op()], node.comparators), \
                f"{type(node.ops[0]).__name__} -> {new_op.__name__}"
    if (isinstance(node, ast.Constant) and type(node.value) is int
            and isinstance(parent, (ast.BinOp, ast.Compare, ast.Call, ast.Subscript, ast.Slice, ast.keyword))):
        yield "off_by_one", ast.Constant(node.value + 1), f"{node.value} -> {node.value + 1}"
        if node.value > 0:
            yield "off_by_one", ast.Constant(node.value - 1), f"{node.value} -> {node.value - 1}"
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) is int and node.operand.value > 0):
        value = node.operand.value
        yield "off_by_one", ast.UnaryOp(ast.USub(), ast.Constant(value + 1)), f"-{value} -> -{value + 1}"
        smaller = ast.UnaryOp(ast.USub(), ast.Constant(value - 1)) if value > 1 else ast.Constant(0)
        yield "off_by_one", smaller, f"-{value} -> -{value - 1}"
    if isinstance(node, ast.BoolOp) and len(node.values) == 2:
        for keep in (0, 1):
            yield "dropped_condition", node.values[keep], f"dropped operand {1 - keep} of {type(node.op).__name__}"
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "wrong_operator", ast.BoolOp(other, node.values), f"{type(node.op).__name__} -> {type(other).__name__}"
    if isinstance(parent, (ast.If, ast.While, ast.IfExp)) and node is parent.test:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield "negated_condition", node.operand, "removed 'not'"
        elif not isinstance(node, ast.BoolOp):
            yield "negated_condition", ast.UnaryOp(ast.Not(), node), "negated the condition"
    if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args):
        first, second = node.args[0], node.args[1]
        if ast.dump(first) != ast.dump(second):
            yield "swapped_arguments", ast.Call(node.func, [second, first, *node.args[2:]], node.keywords), \
                "swapped the first two arguments"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BUILTIN_SWAPS:
        yield "wrong_builtin", ast.Call(ast.Name(_BUILTIN_SWAPS[node.func.id], ast.Load()), node.args,
                                        node.keywords), f"{node.func.id} -> {_BUILTIN_SWAPS[node.func.id]}"
    if isinstance(node, ast.Return) and node.value is not None:
        value = node.value
        if isinstance(value, ast.Constant) and type(value.value) is bool:
            yield "wrong_return", ast.Return(ast.Constant(not value.value)), "flipped the returned boolean"
        elif isinstance(value, (ast.Compare, ast.BoolOp)):
            yield "wrong_return", ast.Return(ast.UnaryOp(ast.Not(), value)), "negated the returned condition"
        elif not (isinstance(value, ast.Constant) and value.value is None):
            yield "wrong_return", ast.Return(ast.Constant(None)), "returns None"
    if isinstance(node, ast.Constant) and type(node.value) is bool and not isinstance(parent, ast.Return):
        yield "wrong_constant", ast.Constant(not node.value), f"{node.value} -> {not node.value}"


class _Sites(ast.NodeVisitor):
    """Every single-line node inside a function, with its parent and enclosing function."""

    def __init__(self) -> None:
        self.sites: list[tuple[ast.AST, ast.AST | None, str]] = []
        self._stack: list[str] = []
        self._parents: list[ast.AST] = []

    def generic_visit(self, node: ast.AST) -> None:
        if self._stack and getattr(node, "lineno", None) is not None and node.lineno == node.end_lineno:
            self.sites.append((node, self._parents[-1] if self._parents else None, ".".join(self._stack)))
        self._parents.append(node)
        super().generic_visit(node)
        self._parents.pop()

    def _scope(self, node: ast.AST) -> None:
        self._stack.append(node.name)
        self._parents.append(node)
        for child in ast.iter_child_nodes(node):
            self.visit(child)
        self._parents.pop()
        self._stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope


def _replace_segment(lines: list[str], node: ast.AST, text: str) -> list[str]:
    line = lines[node.lineno - 1]
    raw = line.encode("utf-8")
    new = raw[:node.col_offset].decode("utf-8") + text + raw[node.end_col_offset:].decode("utf-8")
    return lines[:node.lineno - 1] + [new] + lines[node.lineno:]


def _swapped_dump(tree: ast.Module, parent: ast.AST, target: ast.AST, replacement: ast.AST) -> str:
    """``ast.dump`` of ``tree`` with ``target`` (a child of ``parent``) replaced; the tree is restored."""
    for field, value in ast.iter_fields(parent):
        if value is target:
            setattr(parent, field, replacement)
            try:
                return ast.dump(tree)
            finally:
                setattr(parent, field, target)
        if isinstance(value, list):
            for index, item in enumerate(value):
                if item is target:
                    value[index] = replacement
                    try:
                        return ast.dump(tree)
                    finally:
                        value[index] = target
    raise ValueError("target is not a child of parent")


def _unique_context(lines: list[str], index: int, new_line: str) -> tuple[str, str] | None:
    """The smallest block of whole lines around line ``index`` that is unique before and after."""
    original = "\n".join(lines)
    mutated_lines = lines[:index] + [new_line] + lines[index + 1:]
    mutated = "\n".join(mutated_lines)
    for radius in range(0, 6):
        lo, hi = max(0, index - radius), min(len(lines), index + radius + 1)
        old = "\n".join(lines[lo:hi]) + "\n"
        new = "\n".join(mutated_lines[lo:hi]) + "\n"
        if original.count(old.rstrip("\n")) == 1 and mutated.count(new.rstrip("\n")) == 1 \
                and (original + "\n").count(old) == 1 and (mutated + "\n").count(new) == 1:
            return old, new
    return None


def mutations_of_source(project: str, file: str, source: str) -> list[Mutation]:
    """All valid single-line mutations of one file, in source order."""
    tree = ast.parse(source)
    lines = source.split("\n")
    finder = _Sites()
    finder.visit(tree)
    reference = ast.dump(tree)
    found: list[Mutation] = []
    seen: set[tuple[int, str]] = set()
    for node, parent, function in finder.sites:
        for operator, replacement, detail in _variants(node, parent):
            expected = _swapped_dump(tree, parent, node, replacement)
            if expected == reference:
                continue
            text = ast.unparse(replacement)
            new_line = None
            for candidate in (text, f"({text})"):
                if isinstance(node, ast.stmt) and candidate.startswith("("):
                    continue
                trial = _replace_segment(lines, node, candidate)
                try:
                    if ast.dump(ast.parse("\n".join(trial))) == expected:
                        new_line = trial[node.lineno - 1]
                        break
                except SyntaxError:
                    continue
            if new_line is None or (node.lineno, new_line) in seen:
                continue
            seen.add((node.lineno, new_line))
            block = _unique_context(lines, node.lineno - 1, new_line)
            if block is None:
                continue
            found.append(Mutation(project=project, file=file, operator=operator, line=node.lineno,
                                  function=function, old=block[0], new=block[1], detail=detail))
    return found


def project_files(project_dir: Path) -> dict[str, str]:
    """The project's files (path inside the project -> text), without caches."""
    files: dict[str, str] = {}
    for path in sorted(project_dir.rglob("*")):
        parts = path.relative_to(project_dir).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts) \
                and path.suffix not in (".pyc", ".pyo"):
            files["/".join(parts)] = path.read_text(encoding="utf-8")
    return files


def package_name(project_dir: Path) -> str:
    packages = [p.name for p in project_dir.iterdir() if (p / "__init__.py").is_file()]
    if len(packages) != 1:
        raise ValueError(f"{project_dir}: a project needs exactly one package, found {packages}")
    return packages[0]


def project_mutations(project_dir: Path, operators: tuple[str, ...] = OPERATORS) -> list[Mutation]:
    """Every mutation of the package source of a project (tests are never mutated)."""
    name = project_dir.name
    package = package_name(project_dir)
    found: list[Mutation] = []
    for rel, text in project_files(project_dir).items():
        if rel.startswith(package + "/") and rel.endswith(".py"):
            found += [m for m in mutations_of_source(name, rel, text) if m.operator in operators]
    return found


def project_digest(project_dir: Path) -> str:
    digest = hashlib.sha256()
    for rel, text in project_files(project_dir).items():
        digest.update(rel.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


def available_projects(root: Path = PROJECTS_DIR) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "tests").is_dir())


def interleave(groups: list[list[T]], block: int = 1) -> list[T]:
    """Round-robin over groups, ``block`` items at a time, so that a prefix of the result draws on
    every group (and a short prefix on few groups, when ``block`` > 1)."""
    result: list[T] = []
    for i in range(0, max((len(g) for g in groups), default=0), block):
        for group in groups:
            result += group[i:i + block]
    return result
