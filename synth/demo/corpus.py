"""The demo's generated text: copy, maths-as-code and JSON-lookup drills for pre-training, and trajectories
rendered with the chat template (the tokenizer's training text)."""

from __future__ import annotations

import glob
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentkit.paths import atomic_open

_STATUSES = ["pending", "shipped", "delivered", "open", "closed", "active", "paused", "done", "late", "ready"]
_NUMBER_KEYS = ["total", "price", "amount", "balance", "weight", "score", "cost"]
_COUNT_KEYS = ["count", "quantity", "stock", "pages", "seats", "age"]
_WORD_KEYS = {
    "color": ["red", "blue", "green", "black", "white", "yellow"],
    "city": ["Lima", "Oslo", "Pune", "Kyoto", "Accra", "Quito", "Riga", "Perth"],
    "kind": ["book", "lamp", "chair", "phone", "bike", "desk", "kettle", "scarf"],
}
_PREFIXES = ["O", "K", "P", "C", "A", "R", "T", "X"]


def _ident(rng: random.Random) -> str:
    return f"{rng.choice(_PREFIXES)}{rng.randint(1000, 9999)}"


def _money(rng: random.Random) -> str:
    return f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"


def integer_expression(rng: random.Random) -> tuple[str, str, int]:
    """An integer expression as LaTeX, as Python, and its value."""
    n = [rng.randint(2, 99) if rng.random() < 0.8 else rng.randint(100, 999) for _ in range(4)]
    a, b, c, d = n
    forms = [
        f"{a}*{b}",
        f"{a} + {b}",
        f"{a} - {b}*{c}",
        f"{a}*{b} - {c}",
        f"({a} + {b})*{c} - {d}",
        f"{a}*{b} + {c}*{d}",
        f"{a} - {b}*{c} + {d}",
        f"({a} - {b})*({c} + {d})",
        f"{a} + {b} + {c}",
    ]
    code = rng.choice(forms)
    return code.replace("*", " \\times "), code, eval(code)  # only digits and operators written above


def _drill_expression(rng: random.Random) -> str:
    tex, code, value = integer_expression(rng)
    return rng.choice(
        [
            f"In Python, ${tex}$ is written {code}. print({code}) prints {value}, so ${tex} = {value}$.",
            f">>> print({code})\n{value}",
            f"To compute ${tex}$, run print({code}); it prints {value}. The result is $\\boxed{{{value}}}$.",
            f"${tex}$ becomes {code} in code, which evaluates to {value}.",
        ]
    )


def _record(rng: random.Random) -> tuple[str, dict[str, Any]]:
    ident = _ident(rng)
    record: dict[str, Any] = {"id": ident}
    keys = rng.sample(["status", "number", "count", "word"], rng.randint(2, 4))
    for key in keys:
        if key == "status":
            record["status"] = rng.choice(_STATUSES)
        elif key == "number":
            record[rng.choice(_NUMBER_KEYS)] = float(_money(rng))
        elif key == "count":
            record[rng.choice(_COUNT_KEYS)] = rng.randint(1, 500)
        else:
            name = rng.choice(sorted(_WORD_KEYS))
            record[name] = rng.choice(_WORD_KEYS[name])
    if rng.random() < 0.5:
        record["parts"] = [
            {"id": f"{ident}-{i}", "count": rng.randint(1, 9), "price": float(_money(rng))}
            for i in range(1, rng.randint(2, 4))
        ]
    keys = list(record)
    rng.shuffle(keys)
    return ident, {k: record[k] for k in keys}


def _drill_lookup(rng: random.Random) -> str:
    ident, record = _record(rng)
    facts = [f"its {key} is {value}" for key, value in record.items() if key not in ("id", "parts")]
    rng.shuffle(facts)
    said = "; ".join(facts[: rng.randint(1, len(facts))]) if facts else "it has parts"
    return f"{json.dumps(record)}\nRecord {ident}: {said}."


def _drill_copy(rng: random.Random) -> str:
    items = [
        str(rng.randint(0, 10 ** rng.randint(1, 6))) if rng.random() < 0.7 else _ident(rng)
        for _ in range(rng.randint(1, 4))
    ]
    shown = " ".join(items)
    return rng.choice(
        [
            f"Copy: {shown} -> {shown}",
            f"Say it again: {shown}. {shown}.",
            f"The code is {shown}; once more, the code is {shown}.",
        ]
    )


def drill_corpus(n: int, seed: int = 0) -> Iterator[str]:
    """``n`` documents that teach what an agent does most: copy exact strings, turn maths into code, and
    read a value out of a JSON record. No chat template and no agent format: those come in mid-training."""
    rng = random.Random(f"drills/{seed}")
    makers = [_drill_expression, _drill_lookup, _drill_copy]
    for _ in range(n):
        yield "\n".join(rng.choice(makers)(rng) for _ in range(rng.randint(2, 5)))


def write_texts(path: Path, texts) -> int:
    """``{"text": ...}`` lines, written atomically."""
    count = 0
    with atomic_open(path) as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            count += 1
    return count


def trajectory_rows(*patterns: str) -> Iterator[dict[str, Any]]:
    """The records of every ``.jsonl`` shard matching the glob patterns, in a stable order."""
    for path in sorted({p for pattern in patterns for p in glob.glob(pattern)}):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def rendered_trajectories(*patterns: str) -> Iterator[str]:
    """Each trajectory as the chat template renders it, tool block included: the text the model reads."""
    from agentkit.models import load_tokenizer

    tokenizer = load_tokenizer()
    for row in trajectory_rows(*patterns):
        messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
        yield tokenizer.apply_chat_template(messages, tools=row.get("tools") or None, tokenize=False)
