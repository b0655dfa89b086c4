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

OPERATORS = (
    "wrong_operator",
    "wrong_comparison",
    "off_by_one",
    "dropped_condition",
    "negated_condition",
    "swapped_arguments",
    "wrong_return",
    "wrong_constant",
    "wrong_builtin",
)
STRUCTURAL_OPERATORS = ("stub_body", "remove_guard", "swap_branches")
"""SWE-smith-style bugs over whole statements: a function body reverted to a stub, an early-exit guard
removed, the branches of an ``if``/``else`` swapped."""
ALL_OPERATORS = OPERATORS + STRUCTURAL_OPERATORS
TEXT_SUFFIXES = (
    ".py",
    ".pyi",
    ".toml",
    ".cfg",
    ".ini",
    ".txt",
    ".json",
    ".md",
    ".rst",
    ".typed",
    ".yaml",
    ".yml",
)
"""The files of a project that are uploaded to sandboxes (code, configuration, docs); the rest is left out."""

_BINOP_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
_COMPARE_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt,),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt,),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
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
        yield (
            "wrong_operator",
            ast.BinOp(node.left, new_op, node.right),
            f"{type(node.op).__name__} -> {type(new_op).__name__}",
        )
    if isinstance(node, ast.AugAssign) and type(node.op) in (ast.Add, ast.Sub):
        new_op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        yield "wrong_operator", ast.AugAssign(node.target, new_op, node.value), "augmented assignment flipped"
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAPS:
        for new_op in _COMPARE_SWAPS[type(node.ops[0])]:
            yield (
                "wrong_comparison",
                ast.Compare(node.left, [new_op()], node.comparators),
                f"{type(node.ops[0]).__name__} -> {new_op.__name__}",
            )
    if (
        isinstance(node, ast.Constant)
        and type(node.value) is int
        and isinstance(parent, (ast.BinOp, ast.Compare, ast.Call, ast.Subscript, ast.Slice, ast.keyword))
    ):
        yield "off_by_one", ast.Constant(node.value + 1), f"{node.value} -> {node.value + 1}"
        if node.value > 0:
            yield "off_by_one", ast.Constant(node.value - 1), f"{node.value} -> {node.value - 1}"
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
        and node.operand.value > 0
    ):
        value = node.operand.value
        yield "off_by_one", ast.UnaryOp(ast.USub(), ast.Constant(value + 1)), f"-{value} -> -{value + 1}"
        smaller = ast.UnaryOp(ast.USub(), ast.Constant(value - 1)) if value > 1 else ast.Constant(0)
        yield "off_by_one", smaller, f"-{value} -> -{value - 1}"
    if isinstance(node, ast.BoolOp) and len(node.values) == 2:
        for keep in (0, 1):
            yield (
                "dropped_condition",
                node.values[keep],
                f"dropped operand {1 - keep} of {type(node.op).__name__}",
            )
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield (
            "wrong_operator",
            ast.BoolOp(other, node.values),
            f"{type(node.op).__name__} -> {type(other).__name__}",
        )
    if isinstance(parent, (ast.If, ast.While, ast.IfExp)) and node is parent.test:
        test = parent.test
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            yield "negated_condition", test.operand, "removed 'not'"
        elif not isinstance(test, ast.BoolOp):
            yield "negated_condition", ast.UnaryOp(ast.Not(), test), "negated the condition"
    if (
        isinstance(node, ast.Call)
        and len(node.args) >= 2
        and not any(isinstance(a, ast.Starred) for a in node.args)
    ):
        first, second = node.args[0], node.args[1]
        if ast.dump(first) != ast.dump(second):
            yield (
                "swapped_arguments",
                ast.Call(node.func, [second, first, *node.args[2:]], node.keywords),
                "swapped the first two arguments",
            )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BUILTIN_SWAPS:
        yield (
            "wrong_builtin",
            ast.Call(ast.Name(_BUILTIN_SWAPS[node.func.id], ast.Load()), node.args, node.keywords),
            f"{node.func.id} -> {_BUILTIN_SWAPS[node.func.id]}",
        )
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
        self.sites: list[tuple[ast.expr | ast.stmt, ast.AST, str]] = []
        self._stack: list[str] = []
        self._parents: list[ast.AST] = []

    def generic_visit(self, node: ast.AST) -> None:
        # Only expressions and statements have mutations; inside a scope there is always a parent.
        if self._stack and isinstance(node, ast.expr | ast.stmt) and node.lineno == node.end_lineno:
            self.sites.append((node, self._parents[-1], ".".join(self._stack)))
        self._parents.append(node)
        super().generic_visit(node)
        self._parents.pop()

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._stack.append(node.name)
        self._parents.append(node)
        for child in ast.iter_child_nodes(node):
            self.visit(child)
        self._parents.pop()
        self._stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope


def _replace_segment(lines: list[str], node: ast.expr | ast.stmt, text: str) -> list[str]:
    line = lines[node.lineno - 1]
    raw = line.encode("utf-8")
    new = raw[: node.col_offset].decode("utf-8") + text + raw[node.end_col_offset :].decode("utf-8")
    return lines[: node.lineno - 1] + [new] + lines[node.lineno :]


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
    mutated_lines = lines[:index] + [new_line] + lines[index + 1 :]
    mutated = "\n".join(mutated_lines)
    for radius in range(0, 6):
        lo, hi = max(0, index - radius), min(len(lines), index + radius + 1)
        old = "\n".join(lines[lo:hi]) + "\n"
        new = "\n".join(mutated_lines[lo:hi]) + "\n"
        if (
            original.count(old.rstrip("\n")) == 1
            and mutated.count(new.rstrip("\n")) == 1
            and (original + "\n").count(old) == 1
            and (mutated + "\n").count(new) == 1
        ):
            return old, new
    return None


class _FileMutations:
    """The mutations found in one file; ``add`` stamps each with the project and the file."""

    def __init__(self, project: str, file: str):
        self.project = project
        self.file = file
        self.found: list[Mutation] = []

    def add(
        self, operator: str, line: int, function: str | None, change: tuple[str, str], detail: str
    ) -> None:
        """Record that ``change`` (``old``, ``new``) at ``line`` is a bug of kind ``operator``."""
        old, new = change
        self.found.append(
            Mutation(
                project=self.project,
                file=self.file,
                operator=operator,
                line=line,
                function=function,
                old=old,
                new=new,
                detail=detail,
            )
        )


def mutations_of_source(project: str, file: str, source: str) -> list[Mutation]:
    """All valid single-line mutations of one file, in source order."""
    tree = ast.parse(source)
    lines = source.split("\n")
    finder = _Sites()
    finder.visit(tree)
    reference = ast.dump(tree)
    found = _FileMutations(project, file)
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
            if block is not None:
                found.add(operator, node.lineno, function, block, detail)
    return found.found


def _tracked(project_dir: Path) -> list[Path] | None:
    """The files git tracks in ``project_dir`` (a checkout), or None when it is not a git work tree."""
    import subprocess

    if not (project_dir / ".git").exists():
        return None
    try:
        listing = subprocess.run(
            ["git", "-C", str(project_dir), "ls-files", "-z"], capture_output=True, check=True, timeout=60
        ).stdout.decode("utf-8")
    except (OSError, subprocess.SubprocessError):
        return None
    return [project_dir / rel for rel in listing.split("\0") if rel]


def project_files(project_dir: Path) -> dict[str, str]:
    """The project's text files (path inside the project -> text): what git tracks in a checkout, else every
    file but hidden ones, caches, build output and packaging metadata; only ``TEXT_SUFFIXES`` that decode."""
    files: dict[str, str] = {}
    candidates = _tracked(project_dir)
    for path in sorted(candidates if candidates is not None else project_dir.rglob("*")):
        parts = path.relative_to(project_dir).parts
        if not path.is_file() or any(
            p.startswith(".") or p in ("__pycache__", "build", "dist") or p.endswith(".egg-info")
            for p in parts
        ):
            continue
        if path.suffix not in TEXT_SUFFIXES and path.name not in ("LICENSE", "PKG-INFO"):
            continue
        try:
            files["/".join(parts)] = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    return files


_NOT_PACKAGES = (
    "test",
    "tests",
    "testing",
    "doc",
    "docs",
    "documentation",
    "example",
    "examples",
    "bench",
    "benchmarks",
    "scripts",
    "tools",
    "build",
    "dist",
)


def package_name(project_dir: Path) -> str:
    """The project's one package, as a path inside it: ``pkg`` at the top, or ``src/pkg`` (src layout)."""
    for base in (project_dir, project_dir / "src"):
        if not base.is_dir():
            continue
        packages = [
            p.name
            for p in base.iterdir()
            if (p / "__init__.py").is_file() and p.name.lower() not in _NOT_PACKAGES
        ]
        if len(packages) == 1:
            return packages[0] if base == project_dir else f"src/{packages[0]}"
        if len(packages) > 1:
            raise ValueError(
                f"{base}: a project needs exactly one package, found {sorted(packages)} "
                "(name one with env.tasks.options.package)"
            )
    raise ValueError(f"{project_dir}: no package (a directory with __init__.py, at the top or under src/)")


def is_test_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(part in ("test", "tests", "testing") for part in rel.split("/")[:-1])
    )


def project_mutations(
    project_dir: Path, operators: tuple[str, ...] = OPERATORS, package: str | None = None
) -> list[Mutation]:
    """Every mutation of the package source of a project (tests are never mutated)."""
    name = project_dir.name
    package = package or package_name(project_dir)
    found: list[Mutation] = []
    for rel, text in project_files(project_dir).items():
        if (
            rel.startswith(package + "/")
            and rel.endswith(".py")
            and not is_test_file(rel[len(package) + 1 :])
        ):
            if set(operators) & set(OPERATORS):
                found += [m for m in mutations_of_source(name, rel, text) if m.operator in operators]
            if set(operators) & set(STRUCTURAL_OPERATORS):
                found += [m for m in structural_mutations(name, rel, text) if m.operator in operators]
    return found


def _unique_swap(source: str, old: str, new: str) -> tuple[str, str] | None:
    """``(old, new)`` if ``old`` is unique in ``source``, ``new`` unique in the result, and it still parses."""
    if old == new or source.count(old) != 1:
        return None
    mutated = source.replace(old, new, 1)
    if mutated.count(new) != 1:
        return None
    try:
        ast.parse(mutated)
    except SyntaxError:
        return None
    return old, new


def _end(node: ast.stmt) -> int:
    """The last line of a statement (``ast.parse`` sets it on every node it returns)."""
    assert node.end_lineno is not None
    return node.end_lineno


def _block(lines: list[str], first: int, last: int) -> str:
    """Lines ``first``..``last`` (1-based, inclusive), each with its newline."""
    return "".join(line + "\n" for line in lines[first - 1 : last])


def structural_mutations(project: str, file: str, source: str) -> list[Mutation]:
    """SWE-smith-style mutations of one file: ``stub_body`` (a function's body becomes ``pass``, its signature
    and docstring kept), ``remove_guard`` (an ``if`` whose body only raises or returns is deleted), and
    ``swap_branches`` (the bodies of an ``if``/``else`` change places)."""
    tree = ast.parse(source)
    lines = source.split("\n")
    found = _FileMutations(project, file)

    def add(operator: str, node: ast.stmt, function: str | None, old: str, new: str, detail: str) -> None:
        swap = _unique_swap(source, old, new)
        if swap is not None:
            found.add(operator, node.lineno, function, swap, detail)

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            name = ".".join(scope) or None
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                body = child.body
                docstring = (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                )
                code = body[1:] if docstring else body
                if len(code) >= 2 or (code and not isinstance(code[0], ast.Pass | ast.Return)):
                    indent = lines[code[0].lineno - 1][: code[0].col_offset]
                    header = _block(lines, child.lineno, code[0].lineno - 1)
                    old = header + _block(lines, code[0].lineno, _end(child))
                    add(
                        "stub_body",
                        child,
                        ".".join([*scope, child.name]),
                        old,
                        header + f"{indent}pass\n",
                        f"the body of {child.name} reverted to a stub",
                    )
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.If) and scope:
                exits = child.body and all(isinstance(s, ast.Raise | ast.Return) for s in child.body[-1:])
                siblings = getattr(node, "body", [])
                if (
                    exits
                    and not child.orelse
                    and len(child.body) <= 2
                    and len(siblings) >= 2
                    and _end(child) < len(lines)
                ):
                    after = _block(lines, _end(child) + 1, _end(child) + 1)
                    old = _block(lines, child.lineno, _end(child)) + after
                    add("remove_guard", child, name, old, after, f"the guard on line {child.lineno} removed")
                if child.orelse and not (len(child.orelse) == 1 and isinstance(child.orelse[0], ast.If)):
                    body_text = _block(lines, child.body[0].lineno, _end(child.body[-1]))
                    else_line = next(
                        (
                            i
                            for i in range(_end(child.body[-1]), child.orelse[0].lineno)
                            if lines[i].strip().startswith("else")
                        ),
                        None,
                    )
                    if else_line is not None:
                        else_text = _block(lines, child.orelse[0].lineno, _end(child.orelse[-1]))
                        middle = _block(lines, _end(child.body[-1]) + 1, child.orelse[0].lineno - 1)
                        head = _block(lines, child.lineno, child.body[0].lineno - 1)
                        b_indent = lines[child.body[0].lineno - 1][: child.body[0].col_offset]
                        e_indent = lines[child.orelse[0].lineno - 1][: child.orelse[0].col_offset]
                        if b_indent == e_indent and head.count("\n") == 1:
                            add(
                                "swap_branches",
                                child,
                                name,
                                head + body_text + middle + else_text,
                                head + else_text + middle + body_text,
                                f"the branches of the if on line {child.lineno} swapped",
                            )
            visit(child, scope)

    visit(tree, [])
    return found.found


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
            result += group[i : i + block]
    return result
