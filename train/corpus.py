"""Generated text corpora: no hub, no download. Deterministic for a seed.

``stem_corpus`` mixes arithmetic, algebra, LaTeX, Python code and JSON tool calls with plain sentences;
``commonsense_corpus`` is everyday facts and short stories; ``commonsense_stem_corpus`` is the paper's
"Commonsense -> STEM" pre-training curriculum at toy scale (commonsense first, then STEM-heavy).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

_SUBJECTS = [
    "the river",
    "a small cat",
    "the old library",
    "every student",
    "the red car",
    "our team",
    "the teacher",
    "a quiet village",
    "the north wind",
    "this machine",
]
_VERBS = [
    "crosses",
    "watches",
    "builds",
    "finds",
    "carries",
    "opens",
    "measures",
    "follows",
    "explains",
    "repairs",
]
_OBJECTS = [
    "the bridge",
    "a long road",
    "three apples",
    "the answer",
    "a blue box",
    "the last page",
    "an old map",
    "the small garden",
    "every door",
    "the evening train",
]
_PY = [
    "def add(a, b):\n    return a + b\n",
    "for i in range({n}):\n    print(i * {m})\n",
    "import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - {n}, x))\n",
    "values = [{n}, {m}, {k}]\nprint(sum(values) / len(values))\n",
    "with open('data.txt') as f:\n    lines = f.read().splitlines()\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint(fib({n}))\n",
    "result = {{}}\nfor word in text.split():\n    result[word] = result.get(word, 0) + 1\n",
    "if x % {m} == 0 and x > {k}:\n    total += x\nelif x < 0:\n    raise ValueError('negative')\n",
]

# Everyday facts: (subject, fact). True statements only, so a model pre-trained on them learns no nonsense.
_FACTS = [
    ("Water", "freezes at 0 degrees Celsius and boils at 100 degrees Celsius"),
    ("A week", "has seven days"),
    ("A year", "has twelve months"),
    ("A day", "has twenty-four hours"),
    ("An hour", "has sixty minutes"),
    ("The sun", "rises in the east and sets in the west"),
    ("Fish", "live in water and breathe with gills"),
    ("Birds", "have feathers and most of them can fly"),
    ("A cow", "eats grass and gives milk"),
    ("Bees", "make honey from the nectar of flowers"),
    ("Plants", "need water, air and sunlight to grow"),
    ("Ice", "melts when it gets warm"),
    ("A spider", "has eight legs"),
    ("An insect", "has six legs"),
    ("Snow", "is frozen water that falls from clouds"),
    ("The moon", "goes around the earth about once a month"),
    ("A triangle", "has three sides"),
    ("A square", "has four equal sides"),
    ("Rain", "falls from clouds when the air is full of water"),
    ("Doctors", "help people who are sick"),
    ("Bread", "is made from flour, water and yeast"),
    ("A clock", "shows the time"),
    ("Winter", "is the coldest season of the year"),
    ("A map", "shows where places are"),
    ("Metal", "conducts heat and electricity"),
]
_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena"]
_PLACES = ["market", "library", "park", "school", "bakery", "station", "museum", "garden"]
_ITEMS = ["apples", "pencils", "books", "eggs", "stamps", "oranges", "cards", "marbles"]
_WHY = [
    ("The road was wet", "it had rained all night"),
    ("The plant grew tall", "it got water and sunlight"),
    ("The ice cream melted", "the day was hot"),
    ("The team was happy", "they had won the game"),
    ("The lamp was off", "nobody had pressed the switch"),
    ("The bread was fresh", "it was baked that morning"),
]


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}."


def _math(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(1, 50)
    kind = rng.randrange(6)
    if kind == 0:
        return f"What is {a} * {b} + {c}? {a} * {b} = {a * b}, and {a * b} + {c} = {a * b + c}. The answer is \\boxed{{{a * b + c}}}."
    if kind == 1:
        return f"Solve {b}x + {c} = {b * a + c}. Subtract {c}: {b}x = {b * a}. Divide by {b}: x = {a}. So \\boxed{{{a}}}."
    if kind == 2:
        return f"$\\frac{{d}}{{dx}} x^{{{b}}} = {b}x^{{{b - 1}}}$ and $\\int_0^1 x^{{{c}}}\\,dx = \\frac{{1}}{{{c + 1}}}$."
    if kind == 3:
        return f"The sum of {a} and {b} is {a + b}; their product is {a * b}; {a} mod {b} = {a % b}."
    if kind == 4:
        return f"Compute {a} - {b} - {c}: {a} - {b} = {a - b}, then {a - b} - {c} = {a - b - c}. \\boxed{{{a - b - c}}}"
    return (
        f"Let $f(x) = {b}x^2 + {c}$. Then $f({a % 10}) = {b} \\cdot {(a % 10) ** 2} + {c} = "
        f"{b * (a % 10) ** 2 + c}$ and $f'(x) = {2 * b}x$."
    )


def _code(rng: random.Random) -> str:
    return rng.choice(_PY).format(n=rng.randint(2, 20), m=rng.randint(2, 9), k=rng.randint(1, 99))


def _tool_call(rng: random.Random) -> str:
    x, y = rng.randint(1, 999), rng.randint(1, 99)
    call = json.dumps({"name": "python", "arguments": {"code": f"print({x} * {y})"}})
    return (
        f"<think>Plan: compute {x} * {y} with python.</think>\n<tool_call>{call}</tool_call>\n"
        f"<tool_response>{x * y}</tool_response>\n<think>Reflection: the tool says {x * y}.</think>"
    )


def _fact(rng: random.Random) -> str:
    subject, fact = rng.choice(_FACTS)
    return f"{subject} {fact}."


def _story(rng: random.Random) -> str:
    name, place, item = rng.choice(_NAMES), rng.choice(_PLACES), rng.choice(_ITEMS)
    n, k = rng.randint(2, 12), rng.randint(1, 9)
    return (
        f"{name} went to the {place} with {n} {item}. A friend gave {name} {k} more, "
        f"so {name} had {n + k} {item} in the end."
    )


def _because(rng: random.Random) -> str:
    effect, cause = rng.choice(_WHY)
    return f"{effect} because {cause}."


def _doc(rng: random.Random, makers: list[Callable[[random.Random], str]], lo: int = 1, hi: int = 4) -> str:
    return " ".join(rng.choice(makers)(rng) for _ in range(rng.randint(lo, hi)))


def stem_corpus(n: int = 20000, seed: int = 0) -> Iterator[str]:
    """``n`` short documents: sentences, worked math, LaTeX, Python and tool calls, in a fixed mix."""
    rng = random.Random(seed)
    makers = [_sentence, _sentence, _math, _math, _code, _tool_call]
    for _ in range(n):
        yield _doc(rng, makers)


def commonsense_corpus(n: int = 20000, seed: int = 0) -> Iterator[str]:
    """``n`` short documents of everyday facts, cause and effect, and small counting stories."""
    rng = random.Random(seed)
    makers = [_fact, _fact, _story, _because, _sentence]
    for _ in range(n):
        yield _doc(rng, makers, 2, 5)


def commonsense_stem_corpus(
    n: int = 20000, seed: int = 0, stem_phase: float = 0.6, stem_share: float = 0.6
) -> Iterator[str]:
    """The pre-training curriculum: a commonsense phase, then a STEM-centric phase.

    The last ``stem_phase`` of the ``n`` documents form the STEM phase, where a document is STEM with
    probability ``stem_share`` (~60% in the paper) and commonsense otherwise.
    """
    rng = random.Random(seed)
    general = commonsense_corpus(n, seed + 1)
    stem = stem_corpus(n, seed + 2)
    first = round(n * (1.0 - stem_phase))
    for i in range(n):
        yield next(stem) if i >= first and rng.random() < stem_share else next(general)


LONG_DOC_CHARS = 2400


def long_corpus(n: int = 1000, seed: int = 0, chars: int = LONG_DOC_CHARS) -> Iterator[str]:
    """``n`` long documents (about ``chars`` characters each): paragraphs of commonsense and STEM text in a row,
    for the long-context stage and its per-position loss."""
    rng = random.Random(seed)
    makers = [_fact, _story, _because, _sentence, _math]
    for _ in range(n):
        parts: list[str] = []
        size = 0
        while size < chars:
            paragraph = _doc(rng, makers, 2, 4)
            parts.append(paragraph)
            size += len(paragraph) + 2
        yield "\n\n".join(parts)


def passkey_document(rng: random.Random, chars: int, digits: int = 5) -> tuple[str, str, str]:
    """``(prefix, question, key)``: a pass key stated at the start, ``chars`` of filler, then the question."""
    key = " ".join(str(rng.randrange(10)) for _ in range(digits))
    filler: list[str] = []
    size = 0
    while size < chars:
        filler.append(_doc(rng, [_fact, _sentence, _because], 2, 4))
        size += len(filler[-1]) + 1
    prefix = f"The pass key is {key}. Remember it. " + " ".join(filler)
    return prefix, " What is the pass key? The pass key is", key


def passkey_corpus(n: int = 1000, seed: int = 0, chars: int = LONG_DOC_CHARS) -> Iterator[str]:
    """Synthetic retrieval documents: the pass key must be copied from far back (0.1 to 1x ``chars`` of filler)."""
    rng = random.Random(seed)
    for _ in range(n):
        prefix, question, key = passkey_document(rng, rng.randint(chars // 10, chars))
        yield f"{prefix}{question} {key}."


def math_corpus(n: int = 20000, seed: int = 0) -> Iterator[str]:
    """``n`` documents of worked arithmetic, algebra and LaTeX calculus."""
    rng = random.Random(seed)
    for _ in range(n):
        yield _doc(rng, [_math], 1, 4)


def code_corpus(n: int = 20000, seed: int = 0) -> Iterator[str]:
    """``n`` documents of small Python programs and python tool calls."""
    rng = random.Random(seed)
    for _ in range(n):
        yield "\n".join(rng.choice([_code, _code, _tool_call])(rng) for _ in range(rng.randint(1, 3)))


def toy_agentic_corpus(n: int = 1000, seed: int = 0) -> Iterator:
    """Verified toy agentic trajectories (python tool calls), for a recipe's agentic stage without a synth run."""
    yield from toy_trajectories(n, seed)


GENERATORS: dict[str, Callable[..., Iterator]] = {
    "stem": stem_corpus,
    "commonsense": commonsense_corpus,
    "commonsense_stem": commonsense_stem_corpus,
    "math": math_corpus,
    "code": code_corpus,
    "long": long_corpus,
    "passkey": passkey_corpus,
    "toy_agentic": toy_agentic_corpus,
}


PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code and return what it prints",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


def toy_trajectories(
    n: int = 200, seed: int = 0, *, template_sha256: str | None = "default", failed_every: int = 0
) -> Iterator:
    """``n`` small, learnable ``Trajectory`` records: sums of 2-6 numbers, done with 0-3 python calls.

    For tests, benchmarks and smoke runs of the training stages without a synth run; lengths vary like
    real SFT data (a direct answer, or one to three tool rounds). Every ``failed_every``-th one (0: none)
    is a failed, unverified episode that training must skip.
    """
    from agentkit.chat_template import template_sha256 as sha
    from agentkit.records import Message, Provenance, Status, Task, ToolCall, ToolSpec, Trajectory, Verdict

    digest = sha() if template_sha256 == "default" else template_sha256
    rng = random.Random(seed)
    for i in range(n):
        terms = [rng.randint(10, 99) for _ in range(rng.randint(2, 6))]
        question = " + ".join(map(str, terms))
        total = sum(terms)
        failed = bool(failed_every) and i % failed_every == failed_every - 1
        answer = total + (1 if failed else 0)
        rounds = 0 if rng.random() < 0.3 else rng.randint(1, min(3, len(terms) - 1))
        messages = [
            Message(role="system", content="You are a careful agent. Answer in \\boxed{}."),
            Message(role="user", content=f"What is {question}?"),
        ]
        if rounds == 0:
            messages.append(
                Message(
                    role="assistant",
                    content=f"<think>{question} = {total}.</think>The answer is \\boxed{{{answer}}}.",
                )
            )
        else:
            cuts = sorted(rng.sample(range(2, len(terms) + 1), rounds - 1)) + [len(terms)]
            for k, cut in enumerate(cuts):
                part = " + ".join(map(str, terms[:cut]))
                messages.append(
                    Message(
                        role="assistant",
                        content=f"<think>Plan: add the first {cut} numbers.</think>",
                        tool_calls=[ToolCall.make(f"call_{k}", "python", {"code": f"print({part})"})],
                    )
                )
                messages.append(
                    Message(
                        role="tool", tool_call_id=f"call_{k}", name="python", content=str(sum(terms[:cut]))
                    )
                )
            messages.append(
                Message(
                    role="assistant",
                    content=f"<think>Reflection: the tool printed {total}.</think>"
                    f"The answer is \\boxed{{{answer}}}.",
                )
            )
        tools = [ToolSpec.model_validate(PYTHON_TOOL)] if rounds else []
        yield Trajectory(
            id=f"toy/add-{seed}-{i:05d}/s0",
            task=Task(
                id=f"add-{seed}-{i:05d}", env="math", prompt=f"What is {question}?", meta={"answer": total}
            ),
            tools=tools,
            messages=messages,
            status=Status.completed,
            reward=0.0 if failed else 1.0,
            verdict=Verdict(passed=not failed, reward=0.0 if failed else 1.0, reason="exact match"),
            provenance=Provenance(model="toy", strategy="reference", chat_template_sha256=digest),
        )
