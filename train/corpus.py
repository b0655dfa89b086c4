"""Generated text corpora: no hub, no download. Deterministic for a seed.

``stem_corpus`` mixes arithmetic, algebra, Python code, JSON tool calls and plain sentences, enough to
train a small tokenizer and to pre-train a tiny model on the shapes agent trajectories contain.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

_SUBJECTS = ["the river", "a small cat", "the old library", "every student", "the red car", "our team",
             "the teacher", "a quiet village", "the north wind", "this machine"]
_VERBS = ["crosses", "watches", "builds", "finds", "carries", "opens", "measures", "follows", "explains", "repairs"]
_OBJECTS = ["the bridge", "a long road", "three apples", "the answer", "a blue box", "the last page",
            "an old map", "the small garden", "every door", "the evening train"]
_PY = [
    "def add(a, b):\n    return a + b\n",
    "for i in range({n}):\n    print(i * {m})\n",
    "import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - {n}, x))\n",
    "values = [{n}, {m}, {k}]\nprint(sum(values) / len(values))\n",
    "with open('data.txt') as f:\n    lines = f.read().splitlines()\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n",
]


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}."


def _math(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(1, 50)
    kind = rng.randrange(4)
    if kind == 0:
        return f"What is {a} * {b} + {c}? {a} * {b} = {a * b}, and {a * b} + {c} = {a * b + c}. The answer is \\boxed{{{a * b + c}}}."
    if kind == 1:
        return f"Solve {b}x + {c} = {b * a + c}. Subtract {c}: {b}x = {b * a}. Divide by {b}: x = {a}. So \\boxed{{{a}}}."
    if kind == 2:
        return f"$\\frac{{d}}{{dx}} x^{{{b}}} = {b}x^{{{b - 1}}}$ and $\\int_0^1 x^{{{c}}}\\,dx = \\frac{{1}}{{{c + 1}}}$."
    return f"The sum of {a} and {b} is {a + b}; their product is {a * b}; {a} mod {b} = {a % b}."


def _code(rng: random.Random) -> str:
    return rng.choice(_PY).format(n=rng.randint(2, 20), m=rng.randint(2, 9), k=rng.randint(1, 99))


def _tool_call(rng: random.Random) -> str:
    code = f"print({rng.randint(1, 999)} * {rng.randint(1, 99)})"
    call = json.dumps({"name": "python", "arguments": {"code": code}})
    return f"<think>Plan: compute it with python.</think>\n<tool_call>{call}</tool_call>"


def stem_corpus(n: int = 20000, seed: int = 0) -> Iterator[str]:
    """``n`` short documents: sentences, worked math, Python and tool calls, in a fixed mix."""
    rng = random.Random(seed)
    makers = [_sentence, _sentence, _math, _math, _code, _tool_call]
    for _ in range(n):
        yield " ".join(rng.choice(makers)(rng) for _ in range(rng.randint(1, 4)))
