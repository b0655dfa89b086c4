"""Procedural function-level tasks: small parameterised exercises with a reference solution.

Each template has parameters drawn per task (a divisor, a shift, a window size...), an input sampler,
and a reference implementation; the hidden tests are asserts (or stdin/stdout cases) whose expected
values come from running that reference on sampled inputs. Some templates also render as a
stdin/stdout program.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkit.envs.code.function import asserts_prompt, stdio_prompt
from agentkit.records import Task

if TYPE_CHECKING:
    from agentkit.config import TaskSourceConfig

N_TESTS = 10
N_PUBLIC = 2
STDIO_SHARE = 0.3


@dataclass(frozen=True)
class Template:
    name: str
    statement: str
    """The task text; ``{...}`` fields come from the parameters."""
    code: str
    """The reference function, formatted with the parameters."""
    params: Callable[[random.Random], dict[str, Any]]
    sample: Callable[[random.Random, dict[str, Any]], tuple]
    stdin: Callable[[tuple], str] | None = None
    """How a test's arguments are written to standard input (None: no stdin/stdout form)."""
    stdin_format: str = ""
    read_args: str = ""
    """Code that builds ``args`` (a tuple) from ``data``, the whole standard input."""
    write_result: str = "print(result)"
    output_format: str = "the result"

    def entry_point(self) -> str:
        return self.code.split("def ", 1)[1].split("(", 1)[0]


def _ints(rng: random.Random, low: int = -20, high: int = 50, size: tuple[int, int] = (0, 12)) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(*size))]


def _words(rng: random.Random, n: int) -> str:
    vocab = ["red", "blue", "green", "tea", "sea", "tree", "bird", "code", "map", "sun", "moon", "rain"]
    return " ".join(rng.choice(vocab[: rng.randint(3, len(vocab))]) for _ in range(n))


TEMPLATES: tuple[Template, ...] = (
    Template(
        "count_multiples",
        "Write a function `count_multiples(nums)` that returns how many integers in the list `nums` are "
        "divisible by {k} (zero and negative numbers included).",
        "def count_multiples(nums):\n    return sum(1 for x in nums if x % {k} == 0)\n",
        lambda rng: {"k": rng.randint(2, 9)},
        lambda rng, p: (_ints(rng),),
        stdin=lambda args: " ".join(map(str, args[0])) + "\n",
        stdin_format="one line with the integers, separated by spaces (possibly empty)",
        read_args="args = ([int(x) for x in data.split()],)",
    ),
    Template(
        "shift_letters",
        "Write a function `shift_letters(text)` that moves every lowercase letter of `text` {k} places forward "
        "in the alphabet, wrapping around from 'z' to 'a'; other characters stay as they are.",
        "def shift_letters(text):\n    out = []\n    for ch in text:\n        if 'a' <= ch <= 'z':\n"
        "            ch = chr((ord(ch) - ord('a') + {k}) % 26 + ord('a'))\n        out.append(ch)\n"
        "    return ''.join(out)\n",
        lambda rng: {"k": rng.randint(1, 25)},
        lambda rng, p: ("".join(rng.choice("abcxyz XYZ!?mnop") for _ in range(rng.randint(0, 14))),),
        stdin=lambda args: args[0] + "\n",
        stdin_format="one line of text",
        read_args="args = (data.rstrip('\\n'),)",
    ),
    Template(
        "compress_runs",
        "Write a function `compress_runs(s)` that returns the run-length encoding of the string `s`: each run "
        "of a repeated character becomes the character followed by the run length, e.g. 'aaab' -> 'a3b1'.",
        "def compress_runs(s):\n    out = []\n    i = 0\n    while i < len(s):\n        j = i\n"
        "        while j < len(s) and s[j] == s[i]:\n            j += 1\n        out.append(s[i] + str(j - i))\n"
        "        i = j\n    return ''.join(out)\n",
        lambda rng: {},
        lambda rng, p: ("".join(rng.choice("ab") * rng.randint(1, 4) for _ in range(rng.randint(0, 5))),),
    ),
    Template(
        "second_largest",
        "Write a function `second_largest(nums)` that returns the second largest distinct value in the list "
        "`nums`, or None when there are fewer than two distinct values.",
        "def second_largest(nums):\n    values = sorted(set(nums), reverse=True)\n"
        "    return values[1] if len(values) > 1 else None\n",
        lambda rng: {},
        lambda rng, p: (_ints(rng, -5, 9, (0, 8)),),
    ),
    Template(
        "best_window",
        "Write a function `best_window(nums)` that returns the largest sum of {k} consecutive elements of the "
        "list `nums`. The list always has at least {k} elements.",
        "def best_window(nums):\n    best = current = sum(nums[:{k}])\n    for i in range({k}, len(nums)):\n"
        "        current += nums[i] - nums[i - {k}]\n        best = max(best, current)\n    return best\n",
        lambda rng: {"k": rng.randint(2, 5)},
        lambda rng, p: ([rng.randint(-30, 30) for _ in range(rng.randint(p["k"], p["k"] + 9))],),
        stdin=lambda args: " ".join(map(str, args[0])) + "\n",
        stdin_format="one line with the integers, separated by spaces",
        read_args="args = ([int(x) for x in data.split()],)",
    ),
    Template(
        "digit_root",
        "Write a function `digit_root(n)` that repeatedly replaces the non-negative integer `n` by the {op} of "
        "its decimal digits until a single digit is left, and returns that digit.",
        "def digit_root(n):\n    while n >= 10:\n        digits = [int(d) for d in str(n)]\n"
        "        total = {start}\n        for d in digits:\n            total = total {sym} d\n        n = total\n"
        "    return n\n",
        lambda rng: rng.choice(
            [{"op": "sum", "start": 0, "sym": "+"}, {"op": "product", "start": 1, "sym": "*"}]
        ),
        lambda rng, p: (rng.choice([rng.randint(0, 9), rng.randint(10, 999), rng.randint(1000, 10**9)]),),
        stdin=lambda args: f"{args[0]}\n",
        stdin_format="one line with the integer n",
        read_args="args = (int(data),)",
    ),
    Template(
        "balanced",
        "Write a function `balanced(s)` that returns True when the brackets {shown} in the string `s` are "
        "balanced and properly nested (other characters are ignored), and False otherwise.",
        "def balanced(s):\n    pairs = {pairs!r}\n    closing = {{v: k for k, v in pairs.items()}}\n    stack = []\n"
        "    for ch in s:\n        if ch in pairs:\n            stack.append(ch)\n        elif ch in closing:\n"
        "            if not stack or stack.pop() != closing[ch]:\n                return False\n"
        "    return not stack\n",
        lambda rng: (
            lambda kinds: {
                "pairs": {o: c for o, c in kinds},
                "shown": ", ".join(f"'{o}{c}'" for o, c in kinds),
            }
        )(rng.sample([("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")], rng.randint(1, 3))),
        lambda rng, p: (
            "".join(
                rng.choice("".join(k + v for k, v in p["pairs"].items()) + "x")
                for _ in range(rng.randint(0, 10))
            ),
        ),
        stdin=lambda args: args[0] + "\n",
        stdin_format="one line with the string",
        read_args="args = (data.rstrip('\\n'),)",
        write_result="print('yes' if result else 'no')",
        output_format="'yes' if the brackets are balanced, otherwise 'no'",
    ),
    Template(
        "top_words",
        "Write a function `top_words(text)` that returns the {k} most frequent words of `text` (split on "
        "whitespace) as a list, most frequent first; words with equal counts go in alphabetical order.",
        "def top_words(text):\n    counts = {{}}\n    for word in text.split():\n"
        "        counts[word] = counts.get(word, 0) + 1\n"
        "    ranked = sorted(counts, key=lambda w: (-counts[w], w))\n    return ranked[:{k}]\n",
        lambda rng: {"k": rng.randint(1, 4)},
        lambda rng, p: (_words(rng, rng.randint(0, 15)),),
        stdin=lambda args: args[0] + "\n",
        stdin_format="one line of text",
        read_args="args = (data,)",
        write_result="print(' '.join(result))",
        output_format="the words on one line, separated by single spaces",
    ),
    Template(
        "to_base",
        "Write a function `to_base(n)` that returns the digits of the non-negative integer `n` written in base "
        "{b}, as a string (no prefix; '0' for zero).",
        "def to_base(n):\n    if n == 0:\n        return '0'\n    digits = []\n    while n:\n"
        "        n, r = divmod(n, {b})\n        digits.append(str(r))\n    return ''.join(reversed(digits))\n",
        lambda rng: {"b": rng.randint(2, 9)},
        lambda rng, p: (rng.choice([0, rng.randint(1, 20), rng.randint(21, 10**6)]),),
        stdin=lambda args: f"{args[0]}\n",
        stdin_format="one line with the integer n",
        read_args="args = (int(data),)",
    ),
    Template(
        "merge_ranges",
        "Write a function `merge_ranges(ranges)` that merges overlapping closed ranges. `ranges` is a list of "
        "[start, end] pairs with start <= end; return the merged ranges as a list of [start, end] lists sorted by "
        "start. Ranges that only touch (one ends where the next starts) are merged{gap_text}.",
        "def merge_ranges(ranges):\n    merged = []\n    for start, end in sorted(ranges):\n"
        "        if merged and start <= merged[-1][1] + {gap}:\n            merged[-1][1] = max(merged[-1][1], end)\n"
        "        else:\n            merged.append([start, end])\n    return merged\n",
        lambda rng: rng.choice(
            [
                {"gap": 0, "gap_text": ""},
                {"gap": 1, "gap_text": ", and so are ranges with no integer between them"},
            ]
        ),
        lambda rng, p: (
            [sorted([rng.randint(0, 30), rng.randint(0, 30)]) for _ in range(rng.randint(0, 6))],
        ),
    ),
)


def _format(template: Template, params: dict[str, Any]) -> tuple[str, str]:
    return template.statement.format(**params), template.code.format(**params)


def _run(code: str, entry_point: str, args: tuple) -> Any:
    """The reference result for ``args`` (the reference code is ours, and small)."""
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<{entry_point}>", "exec"), namespace)  # our own template code
    return namespace[entry_point](*[_copy(a) for a in args])


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


def _stdio_solution(template: Template, code: str) -> str:
    entry = template.entry_point()
    return (
        f"import sys\n\n\n{code}\n\ndef main():\n    data = sys.stdin.read()\n    {template.read_args}\n"
        f'    result = {entry}(*args)\n    {template.write_result}\n\n\nif __name__ == "__main__":\n    main()\n'
    )


def _stdout(template: Template, result: Any) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(template.write_result, {"result": result})  # our own template code
    return buffer.getvalue()


def make_function_task(index: int, seed: int, env_name: str, timeout: float) -> Task:
    """Generated function task number ``index`` for ``seed`` (the same whatever else is generated)."""
    rng = random.Random(f"code-fn:{seed}:{index}")
    template = rng.choice(TEMPLATES)
    params = template.params(rng)
    statement, code = _format(template, params)
    entry = template.entry_point()
    inputs: list[tuple] = []
    seen: set[str] = set()
    for _ in range(N_TESTS * 5):
        args = template.sample(rng, params)
        if repr(args) not in seen:
            seen.add(repr(args))
            inputs.append(args)
        if len(inputs) == N_TESTS:
            break
    stdin = template.stdin if template.stdin is not None and rng.random() < STDIO_SHARE else None
    stdio = stdin is not None
    digest = hashlib.sha256(f"{statement}\0{stdio}\0{inputs!r}".encode()).hexdigest()[:10]
    task_id = f"fn-{template.name}-{digest}"
    if stdin is not None:
        cases = [
            {"input": stdin(args), "output": _stdout(template, _run(code, entry, args))} for args in inputs
        ]
        full = (
            f"{statement}\n\nThis task is a stdin/stdout program: define that function, read the input "
            f"({template.stdin_format}) from standard input, and print {template.output_format}."
        )
        meta = {
            "kind": "function",
            "format": "stdio",
            "source": "generated",
            "template": template.name,
            "entry_point": None,
            "prelude": "",
            "setup": "",
            "cases": cases,
            "public_cases": cases[:N_PUBLIC],
            "solution": _stdio_solution(template, code),
            "statement": full,
            "timeout": timeout,
        }
        return Task(
            id=task_id,
            env=env_name,
            prompt=stdio_prompt(full, cases[:N_PUBLIC]),
            meta=meta,
            abilities=["env_comprehension", "testing"],
        )
    tests = [
        f"assert {entry}({', '.join(repr(a) for a in args)}) == {_run(code, entry, args)!r}"
        for args in inputs
    ]
    meta = {
        "kind": "function",
        "format": "function",
        "source": "generated",
        "template": template.name,
        "entry_point": entry,
        "prelude": "",
        "setup": "",
        "tests": tests,
        "public_tests": tests[:N_PUBLIC],
        "solution": code,
        "statement": statement,
        "timeout": timeout,
    }
    return Task(
        id=task_id,
        env=env_name,
        prompt=asserts_prompt(statement, tests[:N_PUBLIC], entry),
        meta=meta,
        abilities=["testing"],
    )


def generated_function_tasks(source: TaskSourceConfig, n: int, env_name: str, timeout: float) -> list[Task]:
    from dataclasses import replace

    from agentkit.envs.tasks import generate

    return generate(lambda i: make_function_task(i, source.seed, env_name, timeout), replace(source, n=n))
