"""Multi-hop questions over the fictional encyclopedia, with exact answers and their evidence chain.

* ``bridge`` questions follow relations: 1 hop ("In what year was X born?"), 2 hops ("In which city
  was the founder of X born?"), 3 hops ("Which river flows through the birthplace of the inventor
  of X?"). Each hop is one document to find and read.
* ``comparison`` questions read the same attribute of two entities: 2 hops ask for the difference
  ("How many years apart were X and Y founded?"), 3 hops pick one of the two and follow a relation
  from it ("Of X and Y, consider the company that was founded earlier. Who ...?"). Answers are
  values, never one of the two names, so guessing does not pay.

Every question records its evidence chain in ``task.meta["evidence"]``: for each fact, the document,
its title, the sentence offset, the value as written, and a cue word to ``find`` it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from agentkit.envs.research.encyclopedia import ATTRIBUTES, RELATIONS, Encyclopedia, Entity
from agentkit.envs.research.verify import normalize
from agentkit.errors import ConfigError
from agentkit.records import Task

TYPES = ("bridge", "comparison")
HOPS = {"bridge": (1, 2, 3), "comparison": (2, 3)}

REL_PHRASE = {
    ("person", "birth_city"): "the birthplace of {x}",
    ("person", "alma_mater"): "the university attended by {x}",
    ("city", "river"): "the river that flows through {x}",
    ("company", "founder"): "the founder of {x}",
    ("company", "headquarters"): "the city where {x} is headquartered",
    ("invention", "inventor"): "the inventor of {x}",
    ("invention", "maker"): "the company that manufactured {x}",
    ("university", "city"): "the city where {x} is located",
}
FINAL = {
    ("person", "birth_year"): "In what year was {x} born?",
    ("person", "birth_city"): "In which city was {x} born?",
    ("person", "alma_mater"): "Which university did {x} attend?",
    ("city", "founded_year"): "In what year was {x} founded?",
    ("city", "population"): "What is the population of {x}?",
    ("city", "river"): "Which river flows through {x}?",
    ("company", "founded_year"): "In what year was {x} founded?",
    ("company", "employees"): "How many people does {x} employ?",
    ("company", "founder"): "Who founded {x}?",
    ("company", "headquarters"): "In which city is {x} headquartered?",
    ("river", "length_km"): "How long, in kilometres, is {x}?",
    ("invention", "year"): "In what year was {x} invented?",
    ("invention", "inventor"): "Who invented {x}?",
    ("invention", "maker"): "Which company manufactured {x}?",
    ("university", "founded_year"): "In what year was {x} founded?",
    ("university", "city"): "In which city is {x} located?",
}
DIFFERENCE = {
    ("person", "birth_year"): "How many years apart were {a} and {b} born?",
    ("city", "founded_year"): "How many years apart were {a} and {b} founded?",
    ("company", "founded_year"): "How many years apart were {a} and {b} founded?",
    ("university", "founded_year"): "How many years apart were {a} and {b} founded?",
    ("invention", "year"): "How many years apart were {a} and {b} invented?",
    ("river", "length_km"): "What is the difference in length, in kilometres, between {a} and {b}?",
    ("city", "population"): "By how many people does the population of {a} differ from that of {b}?",
    ("company", "employees"): "By how many people does the workforce of {a} differ from that of {b}?",
}
PICK = {
    ("person", "birth_year"): ("min", "person who was born earlier"),
    ("city", "founded_year"): ("min", "city that was founded earlier"),
    ("city", "population"): ("max", "city that has the larger population"),
    ("company", "founded_year"): ("min", "company that was founded earlier"),
    ("company", "employees"): ("max", "company that employs more people"),
    ("invention", "year"): ("min", "invention that was invented earlier"),
    ("university", "founded_year"): ("min", "university that was founded earlier"),
}
NOUN = {
    "person": "person",
    "city": "city",
    "company": "company",
    "invention": "invention",
    "university": "university",
    "river": "river",
}
LABEL = {
    "birth_city": "birthplace",
    "birth_year": "year of birth",
    "alma_mater": "university",
    "river": "river",
    "founded_year": "founding year",
    "population": "population",
    "founder": "founder",
    "headquarters": "headquarters",
    "employees": "number of employees",
    "length_km": "length",
    "year": "year of invention",
    "inventor": "inventor",
    "maker": "manufacturer",
    "city": "city",
}
QUERY_WORD = {
    "birth_city": "born",
    "birth_year": "born",
    "alma_mater": "studied",
    "river": "river",
    "founded_year": "founded",
    "population": "population",
    "founder": "founded",
    "headquarters": "headquartered",
    "employees": "employs",
    "length_km": "kilometres long",
    "year": "invented",
    "inventor": "invented",
    "maker": "manufactured",
    "city": "university",
}
UNITS = {
    "length_km": ("km", "kilometres", "kilometers"),
    "population": ("people", "inhabitants"),
    "employees": ("people", "employees"),
}
YEAR_FACTS = ("birth_year", "founded_year", "year")
START_WEIGHTS = {"person": 3, "city": 2, "company": 3, "river": 1, "invention": 3, "university": 1}


def fact_value(enc: Encyclopedia, entity: Entity, fact: str) -> str:
    """The value of a fact as the documents write it (a name, a year, a number with thousands commas)."""
    if fact in entity.rels:
        return enc.entity(entity.rels[fact]).name
    value = entity.attrs[fact]
    return str(value) if fact in YEAR_FACTS else f"{value:,}"


def number_aliases(value: int, units: Sequence[str] = ()) -> tuple[str, list[str]]:
    plain, grouped = str(value), f"{value:,}"
    aliases = [grouped] if grouped != plain else []
    for unit in units:
        aliases += [f"{plain} {unit}"] + ([f"{grouped} {unit}"] if grouped != plain else [])
    return plain, aliases


def answer_of(enc: Encyclopedia, entity: Entity, fact: str) -> tuple[str, list[str], str]:
    """(answer, aliases, answer kind) of one fact."""
    if fact in entity.rels:
        target = enc.entity(entity.rels[fact])
        return target.name, target.aliases, target.kind
    if fact in YEAR_FACTS:
        return str(entity.attrs[fact]), [], "year"
    answer, aliases = number_aliases(entity.attrs[fact], UNITS.get(fact, ()))
    return answer, aliases, "number"


def evidence_step(enc: Encyclopedia, entity: Entity, fact: str) -> dict[str, Any]:
    site = enc.facts[(entity.uid, fact)]
    return {
        "doc": site.doc_id,
        "title": site.title,
        "entity": entity.name,
        "kind": entity.kind,
        "fact": fact,
        "value": fact_value(enc, entity, fact),
        "offset": site.offset,
        "sentence": site.sentence,
        "cue": site.cue,
        "query": f"{entity.name} {QUERY_WORD[fact]}",
    }


class _Failed(Exception):
    """This draw cannot make a question (a missing relation, a tie); draw again."""


def _has_site(enc: Encyclopedia, entity: Entity, fact: str) -> None:
    if (entity.uid, fact) not in enc.facts:
        raise _Failed


def _facts_of(entity: Entity) -> list[str]:
    return [*ATTRIBUTES[entity.kind], *(r for r in RELATIONS[entity.kind] if r in entity.rels)]


def _bridge(enc: Encyclopedia, rng: random.Random, hops: int) -> dict[str, Any]:
    kinds = list(START_WEIGHTS)
    kind = rng.choices(kinds, weights=[START_WEIGHTS[k] for k in kinds])[0]
    entity = enc.entity(rng.choice(enc.by_kind[kind]))
    phrase = entity.ref
    steps = []
    for _ in range(hops - 1):
        rels = [r for r in RELATIONS[entity.kind] if r in entity.rels]
        if not rels:
            raise _Failed
        rel = rng.choice(rels)
        _has_site(enc, entity, rel)
        steps.append(evidence_step(enc, entity, rel))
        phrase = REL_PHRASE[(entity.kind, rel)].format(x=phrase)
        entity = enc.entity(entity.rels[rel])
    fact = rng.choice(_facts_of(entity))
    _has_site(enc, entity, fact)
    steps.append(evidence_step(enc, entity, fact))
    answer, aliases, answer_kind = answer_of(enc, entity, fact)
    prompt = FINAL[(entity.kind, fact)].format(x=phrase)
    return {
        "prompt": _capitalize(prompt),
        "answer": answer,
        "aliases": aliases,
        "answer_kind": answer_kind,
        "evidence": steps,
        "operation": {"op": "chain"},
    }


def _pair(enc: Encyclopedia, rng: random.Random, table: dict) -> tuple[Entity, Entity, str]:
    kind, attr = rng.choice(list(table))
    uids = enc.by_kind[kind]
    a, b = enc.entity(rng.choice(uids)), enc.entity(rng.choice(uids))
    if a.uid == b.uid or a.attrs[attr] == b.attrs[attr]:
        raise _Failed
    _has_site(enc, a, attr)
    _has_site(enc, b, attr)
    return a, b, attr


def _comparison(enc: Encyclopedia, rng: random.Random, hops: int) -> dict[str, Any]:
    if hops == 2:
        a, b, attr = _pair(enc, rng, DIFFERENCE)
        difference = abs(a.attrs[attr] - b.attrs[attr])
        units = ("years",) if attr in YEAR_FACTS else UNITS.get(attr, ())
        answer, aliases = number_aliases(difference, units)
        prompt = DIFFERENCE[(a.kind, attr)].format(a=a.ref, b=b.ref)
        return {
            "prompt": _capitalize(prompt),
            "answer": answer,
            "aliases": aliases,
            "answer_kind": "number",
            "evidence": [evidence_step(enc, a, attr), evidence_step(enc, b, attr)],
            "operation": {"op": "difference", "fact": attr},
        }
    a, b, attr = _pair(enc, rng, PICK)
    direction, description = PICK[(a.kind, attr)]
    winner = (
        min((a, b), key=lambda e: e.attrs[attr])
        if direction == "min"
        else max((a, b), key=lambda e: e.attrs[attr])
    )
    rels = [r for r in RELATIONS[winner.kind] if r in winner.rels]
    if not rels:
        raise _Failed
    rel = rng.choice(rels)
    target = enc.entity(winner.rels[rel])
    fact = rng.choice(_facts_of(target))
    _has_site(enc, winner, rel)
    _has_site(enc, target, fact)
    answer, aliases, answer_kind = answer_of(enc, target, fact)
    noun = NOUN[a.kind]
    phrase = REL_PHRASE[(winner.kind, rel)].format(x=f"that {noun}")
    prompt = f"Of {a.ref} and {b.ref}, consider the {description}. " + FINAL[(target.kind, fact)].format(
        x=phrase
    )
    return {
        "prompt": _capitalize(prompt),
        "answer": answer,
        "aliases": aliases,
        "answer_kind": answer_kind,
        "evidence": [
            evidence_step(enc, a, attr),
            evidence_step(enc, b, attr),
            evidence_step(enc, winner, rel),
            evidence_step(enc, target, fact),
        ],
        "operation": {"op": "pick", "fact": attr, "direction": direction, "winner": winner.name},
    }


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def buckets(hops: Sequence[int], types: Sequence[str]) -> list[tuple[str, int]]:
    """The (type, hops) kinds of question asked, in the round-robin order questions cycle through."""
    for kind in types:
        if kind not in TYPES:
            raise ConfigError(
                f"tasks.options.types: unknown question type '{kind}' (known: {', '.join(TYPES)})"
            )
    for hop in hops:
        if not isinstance(hop, int) or hop not in (1, 2, 3):
            raise ConfigError(f"tasks.options.hops: hops must be 1, 2 or 3, not {hop!r}")
    out = [(kind, hop) for hop in sorted(set(hops)) for kind in types if hop in HOPS[kind]]
    if not out:
        raise ConfigError(
            f"tasks.options: no question kind has hops {list(hops)} and types {list(types)} "
            "(comparison questions have 2 or 3 hops)"
        )
    return out


def make_question(
    enc: Encyclopedia,
    index: int,
    *,
    seed: int,
    kinds: Sequence[tuple[str, int]],
    index_ref: str,
    max_draws: int = 200,
) -> Task:
    """Question ``index`` of the stream for ``seed``: depends only on these, never on how many are drawn."""
    kind, hops = kinds[index % len(kinds)]
    rng = random.Random(f"questions/{enc.key}/{seed}/{index}")
    for _ in range(max_draws):
        try:
            made = _bridge(enc, rng, hops) if kind == "bridge" else _comparison(enc, rng, hops)
        except _Failed:
            continue
        if normalize(made["answer"]) in normalize(made["prompt"]):
            continue
        meta = {
            "answer": made.pop("answer"),
            "aliases": made.pop("aliases"),
            "type": kind,
            "hops": hops,
            "index": index_ref,
            **{k: v for k, v in made.items() if k != "prompt"},
        }
        return Task(
            id=f"{enc.key.removeprefix('encyclopedia-')}-q{seed}-{index:05d}",
            env="research",
            prompt=made["prompt"],
            meta=meta,
            abilities=["planning", "function_calling"] + (["complex_reasoning"] if hops > 1 else []),
        )
    raise ConfigError(
        f"tasks: could not draw a {hops}-hop {kind} question from {enc.key}; "
        "the corpus is too small (raise tasks.options.docs)"
    )
