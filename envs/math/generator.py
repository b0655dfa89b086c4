"""Procedural math tasks with difficulty levels, exact answers and reference solution programs.

Level 1 arithmetic, 2 fractions, 3 linear equations, 4 quadratic equations and 2x2 systems,
5 derivatives and definite integrals. Every task carries its exact answer (LaTeX, computed with sympy)
and a Python program that prints that answer when run in the env's ``python`` tool; the reference
solver runs the program in the sandbox and boxes what it printed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentkit.envs.tasks import check_task_options
from agentkit.errors import ConfigError
from agentkit.records import Task

LEVELS: dict[str, int] = {
    "arithmetic": 1,
    "fractions": 2,
    "linear": 3,
    "quadratic": 4,
    "system": 4,
    "derivative": 5,
    "integral": 5,
}


@dataclass
class MathProblem:
    kind: str
    question: str
    answer: str
    """The exact answer as LaTeX (what ``sympy.latex`` prints, with ``\\ln`` for natural logs)."""
    solution: str
    """A Python program that prints ``answer``."""
    extra: dict[str, Any] = field(default_factory=dict)


def _nonzero(rng: random.Random, low: int, high: int) -> int:
    value = 0
    while value == 0:
        value = rng.randint(low, high)
    return value


def _latex(expr: Any) -> str:
    import sympy

    return sympy.latex(expr, ln_notation=True)


def _run_program(program: str) -> str:
    """Run a solution program in process and return what it printed (generation-time self check)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(program, "<solution>", "exec"), {"__name__": "__solution__"})
    return out.getvalue().strip()


def arithmetic(rng: random.Random) -> MathProblem:
    a, b, c, d = (rng.randint(2, 99) for _ in range(4))
    forms = [
        f"{a}*{b} - {c}",
        f"({a} + {b})*{c} - {d}",
        f"{a}*{b} + {c}*{d}",
        f"{a} - {b}*{c} + {d}",
        f"({a} - {b})*({c} + {d})",
    ]
    expr = rng.choice(forms)
    value = eval(expr)  # only digits and operators written above
    shown = expr.replace("*", " \\times ")
    return MathProblem("arithmetic", f"Compute ${shown}$.", str(value), f"print({expr})")


def fractions(rng: random.Random) -> MathProblem:
    import sympy

    nums = [(rng.randint(1, 12), rng.randint(2, 12)) for _ in range(3)]
    op1, op2 = rng.choice(["+", "-"]), rng.choice(["+", "-", "*"])
    terms = [f"Rational({p}, {q})" for p, q in nums]
    code_expr = f"{terms[0]} {op1} {terms[1]} {op2} {terms[2]}"
    value = eval(code_expr, {"Rational": sympy.Rational})
    tex_op = {"+": "+", "-": "-", "*": "\\cdot"}
    shown = " ".join(
        [
            f"\\frac{{{nums[0][0]}}}{{{nums[0][1]}}}",
            tex_op[op1],
            f"\\frac{{{nums[1][0]}}}{{{nums[1][1]}}}",
            tex_op[op2],
            f"\\frac{{{nums[2][0]}}}{{{nums[2][1]}}}",
        ]
    )
    program = f"from sympy import Rational, latex\nprint(latex({code_expr}))"
    return MathProblem(
        "fractions",
        f"Compute ${shown}$ and write the result as a fraction in lowest terms.",
        _latex(value),
        program,
    )


def linear(rng: random.Random) -> MathProblem:
    import sympy

    x = sympy.Symbol("x")
    a, c = _nonzero(rng, -9, 9), _nonzero(rng, -9, 9)
    while c == a:
        c = _nonzero(rng, -9, 9)
    b, d = rng.randint(-30, 30), rng.randint(-30, 30)
    lhs, rhs = a * x + b, c * x + d
    root = sympy.Rational(d - b, a - c)  # what solve() finds, without its cost
    program = (
        "from sympy import Eq, Symbol, latex, solve\n"
        "x = Symbol('x')\n"
        f"print(latex(solve(Eq({lhs}, {rhs}), x)[0]))"
    )
    return MathProblem(
        "linear", f"Solve for $x$: ${sympy.latex(lhs)} = {sympy.latex(rhs)}$.", _latex(root), program
    )


def quadratic(rng: random.Random) -> MathProblem:
    import sympy

    x = sympy.Symbol("x")
    if rng.random() < 0.5:
        r1, r2 = rng.randint(-9, 9), rng.randint(-9, 9)
        while r2 == r1:
            r2 = rng.randint(-9, 9)
        a = _nonzero(rng, -3, 3)
        poly = sympy.expand(a * (x - r1) * (x - r2))
    else:
        while True:
            b, c = rng.randint(-9, 9), rng.randint(-12, 12)
            disc = b * b - 4 * c
            if disc > 0 and sympy.sqrt(disc).is_rational is False:
                break
        poly = x**2 + b * x + c
    coeffs = sympy.Poly(poly, x).all_coeffs()
    disc = sympy.sqrt(coeffs[1] ** 2 - 4 * coeffs[0] * coeffs[2])
    roots = sorted({(-coeffs[1] + disc) / (2 * coeffs[0]), (-coeffs[1] - disc) / (2 * coeffs[0])}, key=float)
    program = (
        "from sympy import Eq, Symbol, latex, solve\n"
        "x = Symbol('x')\n"
        f"roots = sorted(solve(Eq({poly}, 0), x), key=float)\n"
        "print(', '.join(latex(r) for r in roots))"
    )
    return MathProblem(
        "quadratic",
        f"Find all real solutions of ${sympy.latex(poly)} = 0$. Give every solution, separated by commas.",
        ", ".join(_latex(r) for r in roots),
        program,
    )


def system(rng: random.Random) -> MathProblem:
    import sympy

    x, y = sympy.symbols("x y")
    x0, y0 = rng.randint(-9, 9), rng.randint(-9, 9)
    while True:
        a, b, c, d = (_nonzero(rng, -6, 6) for _ in range(4))
        if a * d - b * c != 0:
            break
    eq1, eq2 = a * x + b * y, c * x + d * y
    e1, e2 = a * x0 + b * y0, c * x0 + d * y0
    sol = {x: sympy.Integer(x0), y: sympy.Integer(y0)}  # the system was built around this solution
    program = (
        "from sympy import Eq, latex, solve, symbols\n"
        "x, y = symbols('x y')\n"
        f"s = solve([Eq({eq1}, {e1}), Eq({eq2}, {e2})], [x, y])\n"
        "print(f'x = {latex(s[x])}, y = {latex(s[y])}')"
    )
    question = (
        f"Solve the system of equations ${sympy.latex(eq1)} = {e1}$ and ${sympy.latex(eq2)} = {e2}$. "
        "Give the answer in the form $x = \\ldots, y = \\ldots$."
    )
    answer = f"x = {_latex(sol[x])}, y = {_latex(sol[y])}"
    return MathProblem(
        "system",
        question,
        answer,
        program,
        {"variables": ["x", "y"], "values": {"x": _latex(sol[x]), "y": _latex(sol[y])}},
    )


def _random_function(rng: random.Random) -> Any:
    import sympy

    x = sympy.Symbol("x")
    a, b = _nonzero(rng, -5, 5), _nonzero(rng, 2, 4)
    n = rng.randint(2, 4)
    families = [
        a * x**n + b * sympy.sin(x),
        x**n * sympy.exp(b * x),
        a * x**2 * sympy.log(x),
        sympy.sin(b * x) * sympy.cos(x),
        (a * x + 1) / (x**2 + b),
        sympy.exp(a * x) * sympy.cos(b * x),
    ]
    return rng.choice(families)


def derivative(rng: random.Random) -> MathProblem:
    import sympy

    x = sympy.Symbol("x")
    f = _random_function(rng)
    df = sympy.diff(f, x)
    program = f"from sympy import *\nx = Symbol('x')\nf = {f}\nprint(latex(diff(f, x), ln_notation=True))"
    return MathProblem(
        "derivative", f"Find the derivative of $f(x) = {_latex(f)}$ with respect to $x$.", _latex(df), program
    )


def integral(rng: random.Random) -> MathProblem:
    import sympy

    x = sympy.Symbol("x")
    a, b = _nonzero(rng, -5, 5), rng.randint(1, 4)
    n = rng.randint(1, 4)
    families = [
        (a * x**n + b, 0, rng.randint(1, 3)),
        (x * sympy.exp(b * x), 0, 1),
        (a * sympy.sin(x) + b * sympy.cos(x), 0, sympy.pi / 2),
        (sympy.Integer(1) / (x + b), 0, rng.randint(1, 5)),
        (x**n * sympy.log(x), 1, sympy.E),
        (a * x / (x**2 + b), 0, 1),
    ]
    f, low, high = rng.choice(families)
    value = sympy.simplify(sympy.integrate(f, (x, low, high)))
    program = (
        "from sympy import *\n"
        "x = Symbol('x')\n"
        f"f = {f}\n"
        f"value = integrate(f, (x, {low}, {high}))\n"
        "print(latex(simplify(value), ln_notation=True))"
    )
    question = f"Compute the exact value of $\\int_{{{_latex(low)}}}^{{{_latex(high)}}} {_latex(f)} \\, dx$."
    return MathProblem("integral", question, _latex(value), program)


GENERATORS: dict[str, Callable[[random.Random], MathProblem]] = {
    "arithmetic": arithmetic,
    "fractions": fractions,
    "linear": linear,
    "quadratic": quadratic,
    "system": system,
    "derivative": derivative,
    "integral": integral,
}


ABILITIES = {  # the paper's atomic math abilities each kind exercises (metacognition: a reflected mistake)
    "arithmetic": ["knowledge_computation"],
    "fractions": ["knowledge_computation"],
    "linear": ["knowledge_computation", "complex_reasoning"],
    "quadratic": ["complex_reasoning"],
    "system": ["complex_reasoning"],
    "derivative": ["knowledge_computation"],
    "integral": ["knowledge_computation", "complex_reasoning"],
}


def kinds_for(options: dict[str, Any]) -> list[str]:
    """The task kinds selected by generator options ``kinds`` and/or ``levels`` (default: all)."""
    check_task_options(options, ("kinds", "levels", "check"), "math generator")
    kinds = list(options.get("kinds") or GENERATORS)
    for kind in kinds:
        if kind not in GENERATORS:
            raise ConfigError(f"tasks.options.kinds: unknown kind '{kind}'; known: {', '.join(GENERATORS)}")
    levels = options.get("levels")
    if levels:
        bad = [lv for lv in levels if lv not in set(LEVELS.values())]
        if bad:
            raise ConfigError(f"tasks.options.levels: unknown level(s) {bad}; levels are 1..5")
        kinds = [k for k in kinds if LEVELS[k] in set(levels)]
    if not kinds:
        raise ConfigError("tasks.options: the chosen kinds and levels select no task kind")
    return kinds


def make_task(
    index: int, seed: int, kinds: list[str], *, check: bool = False, env_name: str = "math"
) -> Task:
    """Task number ``index`` of the stream for ``seed``: independent of how many tasks are drawn."""
    rng = random.Random(f"math/{seed}/{index}")
    kind = kinds[rng.randrange(len(kinds))]
    problem = GENERATORS[kind](rng)
    if check:
        printed = _run_program(problem.solution)
        if printed != problem.answer:
            raise AssertionError(f"{kind} solution printed {printed!r}, answer is {problem.answer!r}")
    meta = {
        "kind": kind,
        "level": LEVELS[kind],
        "answer": problem.answer,
        "solution": problem.solution,
        "source": "generated",
        **problem.extra,
    }
    return Task(
        id=f"gen-{kind}-s{seed}-{index:05d}",
        env=env_name,
        prompt=problem.question,
        meta=meta,
        abilities=ABILITIES[kind],
    )
