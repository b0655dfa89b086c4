"""A procedural fictional encyclopedia: invented people, cities, companies, rivers, inventions and
universities whose attributes and relations are written as prose across many documents.

Nothing in it can be known without reading it: the names are made of random syllables, facts about
one entity are spread over its article and side articles ("Early life of ...", "History of ..."),
and distractor documents (events, other people with the same surname, other dates) mention the same
names. The same ``(size, seed)`` always gives the same corpus, byte for byte, so a cached index can
be checked against a fingerprint and questions can be regenerated without storing the world.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agentkit.envs.research.corpus import Document

GENERATOR_VERSION = "1"
URL_PREFIX = "https://encyclopedia.example/wiki/"

KINDS = ("person", "city", "company", "river", "invention", "university")
# Share of the corpus, in documents, given to each kind's main articles; side articles and events fill
# the rest (about 0.85 of the documents are articles about entities, the others are events).
SHARES = {"person": 0.30, "city": 0.08, "company": 0.12, "river": 0.03, "invention": 0.10, "university": 0.03}
SIDE_ARTICLE = {"person": 0.40, "city": 0.50, "company": 0.30}

RELATIONS: dict[str, dict[str, str]] = {
    "person": {"birth_city": "city", "alma_mater": "university"},
    "city": {"river": "river"},
    "company": {"founder": "person", "headquarters": "city"},
    "river": {},
    "invention": {"inventor": "person", "maker": "company"},
    "university": {"city": "city"},
}
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "person": ("birth_year",),
    "city": ("founded_year", "population"),
    "company": ("founded_year", "employees"),
    "river": ("length_km",),
    "invention": ("year",),
    "university": ("founded_year",),
}

_SYLLABLES = (
    "ar bel cor dan el fen gar hal is jor kel lin mar nor or pel quin ros sel tor ul ven wyn yr zan bra cal "
    "dor eth fal gil har ith kar lor mor nal os pra ral sar tal ur val wen xan yel zor ash bren cyr del est "
    "fir gan hel jas kov lum mir nev ost pim ren sol tev vor wil ad bor cas dru ev gor hin ilm kes lad mav "
    "nim orn pas rud sev tam ung vel"
).split()
_SURNAME_ENDS = ("", "", "", "son", "ez", "ov", "ard", "ine", "berg", "ley", "ski", "er")
_CITY_ENDS = (
    "holm",
    "berg",
    "ford",
    "stad",
    "mouth",
    "vale",
    "port",
    "wick",
    "by",
    "haven",
    "bridge",
    "",
    "",
    "",
)
_COMPANY_ENDS = (
    "Instruments",
    "Works",
    "Shipping",
    "Textiles",
    "Mills",
    "Foundry",
    "Press",
    "Chemicals",
    "Motors",
    "Optics",
    "Brewing",
    "Ceramics",
    "Engineering",
    "Trading Company",
    "Railways",
    "Glassworks",
    "Telegraph Company",
    "Paper Company",
)
_INDUSTRIES = (
    "engineering",
    "shipping",
    "textile",
    "chemical",
    "publishing",
    "optics",
    "brewing",
    "mining",
    "railway",
    "glassmaking",
    "telecommunications",
    "paper",
    "steel",
    "pharmaceutical",
    "food",
)
_DEVICES = (
    "loom",
    "engine",
    "lamp",
    "press",
    "compass",
    "telegraph",
    "valve",
    "pump",
    "camera",
    "turbine",
    "calculator",
    "furnace",
    "microscope",
    "chronometer",
    "barometer",
    "typewriter",
    "kiln",
    "sextant",
    "dynamo",
    "phonograph",
)
_DEVICE_CATEGORY = {
    "loom": "weaving",
    "engine": "mechanical",
    "lamp": "lighting",
    "press": "printing",
    "compass": "navigation",
    "telegraph": "communication",
    "valve": "hydraulic",
    "pump": "hydraulic",
    "camera": "optical",
    "turbine": "power",
    "calculator": "computing",
    "furnace": "industrial",
    "microscope": "optical",
    "chronometer": "timekeeping",
    "barometer": "measuring",
    "typewriter": "office",
    "kiln": "industrial",
    "sextant": "navigation",
    "dynamo": "electrical",
    "phonograph": "sound-recording",
}
_OCCUPATIONS = (
    "engineer",
    "chemist",
    "painter",
    "merchant",
    "physician",
    "architect",
    "poet",
    "astronomer",
    "banker",
    "shipbuilder",
    "composer",
    "botanist",
    "cartographer",
    "printer",
    "surveyor",
    "watchmaker",
    "geologist",
    "economist",
    "novelist",
    "inventor",
    "sculptor",
    "lawyer",
)
_SUBJECTS = (
    "mathematics",
    "chemistry",
    "law",
    "medicine",
    "architecture",
    "philosophy",
    "engineering",
    "botany",
    "astronomy",
    "music",
    "economics",
    "geology",
    "history",
    "languages",
)
_TOPICS = (
    "river trade",
    "local history",
    "clockwork",
    "glass lenses",
    "folk music",
    "early printing",
    "steam power",
    "canal building",
    "weather records",
    "rare minerals",
    "coastal maps",
    "medicinal plants",
    "bridge design",
    "textile dyes",
    "star charts",
    "harbour engineering",
)
_EVENTS = (
    "Exhibition",
    "Fair",
    "Congress",
    "Regatta",
    "Symposium",
    "Festival",
    "Conference",
    "Expedition",
    "Flood",
    "Strike",
    "Treaty",
    "Games",
)
_UNIVERSITY_KINDS = ("public", "private", "technical", "research", "maritime")
_ARTICLE_PATTERNS = (
    "{w} University",
    "University of {w}",
    "{w} Institute of Technology",
    "{w} College",
    "{w} Polytechnic",
)


@dataclass
class Entity:
    uid: int
    kind: str
    name: str
    ref: str
    """How running prose refers to it mid-sentence (``the Oskar River``, ``Varnholm``)."""
    attrs: dict[str, int] = field(default_factory=dict)
    rels: dict[str, int] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)
    """Descriptive, non-answer details (occupation, industry, region...)."""

    @property
    def aliases(self) -> list[str]:
        out = [self.ref] if self.ref != self.name else []
        if self.kind == "river":
            out.append(self.name.removesuffix(" River"))
        return out


@dataclass(frozen=True)
class FactSite:
    """Where a fact is stated: the document, the sentence and its character offset, and a cue to ``find``."""

    doc_id: str
    title: str
    offset: int
    sentence: str
    cue: str


@dataclass
class Encyclopedia:
    size: int
    seed: int
    entities: list[Entity]
    by_kind: dict[str, list[int]]
    documents: list[Document]
    facts: dict[tuple[int, str], FactSite]

    @property
    def key(self) -> str:
        """A stable name for this corpus, used as the cache directory of its index."""
        return f"encyclopedia-v{GENERATOR_VERSION}-d{self.size}-s{self.seed}"

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc in self.documents:
            digest.update(f"{doc.id}\x00{doc.title}\x00{doc.text}\x00".encode())
        return digest.hexdigest()

    def entity(self, uid: int) -> Entity:
        return self.entities[uid]


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _number(value: int) -> str:
    return f"{value:,}"


class _Names:
    """Unique invented names; every full name is used once across all kinds."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, low: int = 2, high: int = 3) -> str:
        count = self.rng.randint(low, high)
        return "".join(self.rng.choice(_SYLLABLES) for _ in range(count)).capitalize()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("name space exhausted; the encyclopedia is too large for its syllables")


class _Article:
    """Sentences with the facts they state; laid out into paragraphs with offsets when finished."""

    def __init__(self, title: str):
        self.title = title
        self.intro: list[tuple[str, tuple[tuple[int, str], ...], str]] = []
        self.body: list[tuple[str, tuple[tuple[int, str], ...], str]] = []

    def lead(self, sentence: str, facts: tuple[tuple[int, str], ...] = (), cue: str = "") -> None:
        self.intro.append((sentence, facts, cue))

    def add(self, sentence: str, facts: tuple[tuple[int, str], ...] = (), cue: str = "") -> None:
        self.body.append((sentence, facts, cue))

    def finish(self, rng: random.Random, doc_id: str, facts: dict[tuple[int, str], FactSite]) -> Document:
        body = list(self.body)
        rng.shuffle(body)
        paragraphs = [self.intro + body[: rng.randint(0, 2)]]
        rest = body[len(paragraphs[0]) - len(self.intro) :]
        while rest:
            size = rng.randint(2, 5)
            paragraphs.append(rest[:size])
            rest = rest[size:]
        parts: list[str] = []
        offset = 0
        for paragraph in paragraphs:
            if not paragraph:
                continue
            if parts:
                parts.append("\n\n")
                offset += 2
            for s_index, (sentence, stated, cue) in enumerate(paragraph):
                if s_index:
                    parts.append(" ")
                    offset += 1
                for fact in stated:
                    facts[fact] = FactSite(doc_id, self.title, offset, sentence, cue)
                parts.append(sentence)
                offset += len(sentence)
        return Document(
            id=doc_id, title=self.title, text="".join(parts), url=URL_PREFIX + self.title.replace(" ", "_")
        )


def _filler_count(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.50:
        return rng.randint(4, 8)
    if roll < 0.85:
        return rng.randint(10, 18)
    return rng.randint(22, 36)


class _World:
    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.rng = random.Random(f"encyclopedia/{GENERATOR_VERSION}/{seed}")
        self.names = _Names(self.rng)
        self.templates = self._templates()
        self.entities: list[Entity] = []
        self.by_kind: dict[str, list[int]] = {kind: [] for kind in KINDS}
        self.decks: dict[str, list[int]] = {}
        self.regions = [self.names.unique(lambda: self.names.word(2, 2)) for _ in range(40)]
        self.mountains = [self.names.unique(lambda: self.names.word(2, 2)) + " Mountains" for _ in range(30)]
        self.seas = ["the " + self.names.unique(lambda: self.names.word(2, 2)) + " Sea" for _ in range(20)]
        first_count = max(50, min(3000, size // 20))
        self.first_names = [self.names.unique(lambda: self.names.word(2, 2)) for _ in range(first_count)]
        surname_count = max(20, int(size * SHARES["person"] / 2.5))
        self.surnames = [
            self.names.unique(lambda: self.names.word(2, 3) + self.rng.choice(_SURNAME_ENDS))
            for _ in range(surname_count)
        ]

    def add(self, kind: str, name: str, ref: str | None = None) -> Entity:
        entity = Entity(uid=len(self.entities), kind=kind, name=name, ref=ref or name)
        self.entities.append(entity)
        self.by_kind[kind].append(entity.uid)
        return entity

    def choice(self, seq):
        return seq[int(self.rng.random() * len(seq))]

    def randint(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low + 1))

    def deal(self, kind: str) -> Entity:
        """A relation target: entities of ``kind`` are dealt from shuffled decks, so each is the target
        of about as many relations as the others (no hub whose facts would be a good blind guess)."""
        deck = self.decks.get(kind)
        if not deck:
            deck = self.decks[kind] = list(self.by_kind[kind])
            self.rng.shuffle(deck)
        return self.entities[deck.pop()]

    def pick(self, kind: str) -> Entity:
        uids = self.by_kind[kind]
        return self.entities[uids[int(self.rng.random() * len(uids))]]

    def log_uniform(self, low: int, high: int) -> int:
        return int(round(math.exp(self.rng.uniform(math.log(low), math.log(high)))))

    def populate(self) -> None:
        rng, names = self.rng, self.names
        counts = {kind: max(3, int(self.size * share)) for kind, share in SHARES.items()}
        for _ in range(counts["river"]):
            name = names.unique(lambda: names.word() + " River")
            river = self.add("river", name, "the " + name)
            river.attrs["length_km"] = self.log_uniform(40, 4200)
            river.words.update(
                region=rng.choice(self.regions),
                mountains=rng.choice(self.mountains),
                sea=rng.choice(self.seas),
            )
        for _ in range(counts["city"]):
            city = self.add("city", names.unique(lambda: names.word() + rng.choice(_CITY_ENDS)))
            city.attrs["founded_year"] = rng.randint(800, 1850)
            city.attrs["population"] = self.log_uniform(2_000, 3_500_000)
            city.words["region"] = rng.choice(self.regions)
            if rng.random() < 0.8:
                city.rels["river"] = self.deal("river").uid
        for _ in range(counts["university"]):
            pattern = rng.choice(_ARTICLE_PATTERNS)
            name = names.unique(lambda pattern=pattern: pattern.format(w=names.word()))
            university = self.add(
                "university", name, "the " + name if name.startswith("University") else name
            )
            university.attrs["founded_year"] = rng.randint(1100, 1960)
            university.rels["city"] = self.deal("city").uid
            university.words["type"] = rng.choice(_UNIVERSITY_KINDS)
        for _ in range(counts["person"]):
            person = self.add(
                "person", names.unique(lambda: f"{rng.choice(self.first_names)} {rng.choice(self.surnames)}")
            )
            person.attrs["birth_year"] = rng.randint(1760, 1960)
            person.rels["birth_city"] = self.deal("city").uid
            if rng.random() < 0.7:
                person.rels["alma_mater"] = self.deal("university").uid
            person.words.update(
                occupation=rng.choice(_OCCUPATIONS),
                subject=rng.choice(_SUBJECTS),
                topic=rng.choice(_TOPICS),
                pronoun=rng.choice(("he", "she")),
            )
        for _ in range(counts["company"]):
            company = self.add("company", names.unique(lambda: f"{names.word()} {rng.choice(_COMPANY_ENDS)}"))
            founder = self.deal("person")
            company.rels["founder"] = founder.uid
            company.attrs["founded_year"] = min(2020, founder.attrs["birth_year"] + rng.randint(22, 60))
            company.rels["headquarters"] = self.deal("city").uid
            company.attrs["employees"] = self.log_uniform(12, 250_000)
            company.words["industry"] = rng.choice(_INDUSTRIES)
        for _ in range(counts["invention"]):
            device = rng.choice(_DEVICES)
            name = names.unique(lambda device=device: f"{names.word()} {device}")
            invention = self.add("invention", name, "the " + name)
            inventor = self.deal("person")
            invention.rels["inventor"] = inventor.uid
            invention.attrs["year"] = min(2020, inventor.attrs["birth_year"] + rng.randint(20, 65))
            if rng.random() < 0.7:
                invention.rels["maker"] = self.deal("company").uid
            invention.words["category"] = _DEVICE_CATEGORY[device]

    # -- prose ----------------------------------------------------------------------------------

    def e(self, uid: int) -> Entity:
        return self.entities[uid]

    def other(self, kind: str, not_uid: int) -> Entity:
        for _ in range(8):
            candidate = self.pick(kind)
            if candidate.uid != not_uid:
                return candidate
        return candidate

    def year_near(self, year: int, low: int, high: int) -> int:
        return min(2023, year + self.randint(low, high))

    def fillers(self, entity: Entity, count: int) -> list[str]:
        """Up to ``count`` distinct background sentences: true of the world, never an asked fact.

        Templates whose text starts with ``!`` describe a one-off trait and are used once per entity.
        """
        templates = self.templates[entity.kind]
        out: list[str] = []
        once: set[int] = set()
        for _ in range(count):
            index = int(self.rng.random() * len(templates))
            sentence = templates[index](entity)
            if sentence.startswith("!"):
                if index in once:
                    continue
                once.add(index)
                sentence = sentence[1:]
            if sentence not in out:
                out.append(sentence)
        return out

    def _templates(self) -> dict[str, list[Callable[[Entity], str]]]:
        ch, ri, pick, other, near = self.choice, self.randint, self.pick, self.other, self.year_near

        def first(p: Entity) -> str:
            return p.name.split(" ")[0]

        def poss(p: Entity) -> str:
            return "His" if p.words["pronoun"] == "he" else "Her"

        return {
            "person": [
                lambda p: f"{first(p)} spent several years travelling through the {ch(self.regions)} region.",
                lambda p: (
                    f"{first(p)} corresponded for many years with {other('person', p.uid).name} "
                    f"about {ch(_TOPICS)}."
                ),
                lambda p: (
                    f"In {near(p.attrs['birth_year'], 30, 70)}, {first(p)} published a short treatise "
                    f"on {ch(_TOPICS)}."
                ),
                lambda p: (
                    f"!{p.words['pronoun'].capitalize()} later lived for a time in {pick('city').name}."
                ),
                lambda p: f"!{poss(p)} papers are kept in the archive of {pick('university').ref}.",
                lambda p: (
                    f"!Colleagues described {first(p)} as patient, exacting and fond of {p.words['topic']}."
                ),
                lambda p: (
                    f"A portrait of {first(p)} painted in {near(p.attrs['birth_year'], 25, 60)} hangs in "
                    f"{pick('city').name}."
                ),
                lambda p: (
                    f"{first(p)} was elected to a learned society in {near(p.attrs['birth_year'], 35, 65)}."
                ),
                lambda p: f"{poss(p)} work on {p.words['topic']} influenced {other('person', p.uid).name}.",
                lambda p: f"{first(p)} gave public lectures on {ch(_TOPICS)} in {pick('city').name}.",
                lambda p: f"A street in {pick('city').name} was later named after {first(p)}.",
            ],
            "city": [
                lambda c: f"!The economy of {c.name} was long based on {ch(_INDUSTRIES)}.",
                lambda c: f"!A stone bridge built in {ri(1200, 1900)} is one of its best-known landmarks.",
                lambda c: f"{c.name} is twinned with {other('city', c.uid).name}.",
                lambda c: (
                    f"!The climate is mild, with most rain falling in {ch(('spring', 'autumn', 'winter'))}."
                ),
                lambda c: f"!Its market square hosts a yearly fair devoted to {ch(_TOPICS)}.",
                lambda c: f"!A railway line reached {c.name} in {ri(1830, 1930)}.",
                lambda c: f"The old town lost many buildings in a fire in {ri(1500, 1950)}.",
                lambda c: f"Ferries and coaches connect it with {other('city', c.uid).name}.",
                lambda c: f"!The town hall was rebuilt in {ri(1600, 1980)} after a long dispute.",
                lambda c: f"!Its museum holds a collection devoted to {ch(_TOPICS)}.",
            ],
            "company": [
                lambda c: (
                    f"In {near(c.attrs['founded_year'], 3, 60)}, the company opened a factory in "
                    f"{pick('city').name}."
                ),
                lambda c: (
                    f"In {near(c.attrs['founded_year'], 5, 80)}, it acquired {other('company', c.uid).name}."
                ),
                lambda c: f"!Its early catalogues listed products for the {ch(_INDUSTRIES)} trade.",
                lambda c: (
                    f"The firm was reorganised after a strike in {near(c.attrs['founded_year'], 10, 90)}."
                ),
                lambda c: f"!Its archive records a long rivalry with {other('company', c.uid).name}.",
                lambda c: f"!The company's emblem shows a {ch(('crane', 'lion', 'ship', 'star', 'wheel'))}.",
                lambda c: f"!Its apprentices were often trained at {pick('university').ref}.",
                lambda c: (
                    f"A branch office in {pick('city').name} opened in {near(c.attrs['founded_year'], 8, 70)}."
                ),
            ],
            "river": [
                lambda r: f"Its waters were once used to power mills and {ch(_INDUSTRIES)} works.",
                lambda r: f"A canal dug in {ri(1600, 1900)} links it with {other('river', r.uid).ref}.",
                lambda r: "!Salmon and eel were fished along its lower course.",
                lambda r: f"Severe floods were recorded in {ri(1500, 1990)}.",
                lambda r: f"!The valley is known for its orchards and for {ch(_TOPICS)}.",
                lambda r: f"Several of its tributaries rise in the {ch(self.mountains)}.",
                lambda r: f"!The first bridge over it was built in {ri(1100, 1850)}.",
            ],
            "invention": [
                lambda i: f"!An improved version appeared in {near(i.attrs['year'], 4, 30)}.",
                lambda i: f"Early models were exhibited in {pick('city').name}.",
                lambda i: f"!It was soon adapted for use in the {ch(_INDUSTRIES)} industry.",
                lambda i: f"A surviving example is kept at {pick('university').ref}.",
                lambda i: f"Critics compared it unfavourably with {other('invention', i.uid).ref}.",
                lambda i: f"!A patent dispute over the design lasted until {near(i.attrs['year'], 3, 20)}.",
                lambda i: f"By {near(i.attrs['year'], 10, 40)} it was in use in {pick('city').name}.",
            ],
            "university": [
                lambda u: f"!Its library holds about {_number(self.log_uniform(20_000, 4_000_000))} volumes.",
                lambda u: f"!It has about {_number(self.log_uniform(800, 60_000))} students.",
                lambda u: f"!It is known for its faculty of {ch(_SUBJECTS)}.",
                lambda u: f"!Its observatory was built in {ri(1700, 1960)}.",
                lambda u: f"It exchanges students with {other('university', u.uid).ref}.",
                lambda u: f"!Its first rector was {pick('person').name}.",
                lambda u: f"!Its botanical garden was laid out in {ri(1650, 1950)}.",
            ],
        }

    def render(self) -> tuple[list[Document], dict[tuple[int, str], FactSite]]:
        rng = self.rng
        facts: dict[tuple[int, str], FactSite] = {}
        docs: list[Document] = []
        ids: set[str] = set()

        def emit(article: _Article) -> None:
            doc_id = slugify(article.title)
            base, n = doc_id, 2
            while doc_id in ids:
                doc_id, n = f"{base}-{n}", n + 1
            ids.add(doc_id)
            docs.append(article.finish(rng, doc_id, facts))

        born_in: dict[int, list[int]] = {}
        founded_by: dict[int, list[int]] = {}
        invented_by: dict[int, list[int]] = {}
        cities_on: dict[int, list[int]] = {}
        universities_in: dict[int, list[int]] = {}
        made_by: dict[int, list[int]] = {}
        for entity in self.entities:
            rels = entity.rels
            if entity.kind == "person":
                born_in.setdefault(rels["birth_city"], []).append(entity.uid)
            elif entity.kind == "company":
                founded_by.setdefault(rels["founder"], []).append(entity.uid)
            elif entity.kind == "invention":
                invented_by.setdefault(rels["inventor"], []).append(entity.uid)
                if "maker" in rels:
                    made_by.setdefault(rels["maker"], []).append(entity.uid)
            elif entity.kind == "city" and "river" in rels:
                cities_on.setdefault(rels["river"], []).append(entity.uid)
            elif entity.kind == "university":
                universities_in.setdefault(rels["city"], []).append(entity.uid)

        def listing(uids: list[int], limit: int = 3) -> str:
            names = [self.e(u).name for u in uids[:limit]]
            return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

        for entity in self.entities:
            u, name, a, r = entity.uid, entity.name, entity.attrs, entity.rels
            kind = entity.kind
            main = _Article(name)
            side: _Article | None = None
            if kind in SIDE_ARTICLE and rng.random() < SIDE_ARTICLE[kind]:
                side = _Article(("Early life of " if kind == "person" else "History of ") + name)
            if kind == "person":
                first, pron = name.split(" ")[0], entity.words["pronoun"]
                city, year = self.e(r["birth_city"]).name, a["birth_year"]
                main.lead(
                    f"{name} was {_a(entity.words['occupation'])} known for work on {entity.words['topic']}."
                )
                birth = rng.choice(
                    (
                        f"{name} was born in {city} in {year}.",
                        f"Born in {year} in {city}, {first} showed an early interest in {rng.choice(_TOPICS)}.",
                        f"{first} was born in {year} in the city of {city}.",
                    )
                )
                birth_facts = ((u, "birth_city"), (u, "birth_year"))
                if side is not None:
                    side.lead(f"{name} was born in {city} in {year}.", birth_facts, "born")
                    poss = "His" if pron == "he" else "Her"
                    side.add(
                        f"{poss} father was {_a(rng.choice(_OCCUPATIONS))} and {poss.lower()} mother "
                        f"{_a(rng.choice(_OCCUPATIONS))}."
                    )
                    side.add(f"{first} attended school in {self.other('city', r['birth_city']).name}.")
                    side.add(f"As a child {first} was fascinated by {entity.words['topic']}.")
                    main.add(f"{pron.capitalize()} grew up in a family of modest means.")
                else:
                    main.add(birth, birth_facts, "born")
                if "alma_mater" in r:
                    main.add(
                        f"{pron.capitalize()} studied {entity.words['subject']} at {self.e(r['alma_mater']).ref}.",
                        ((u, "alma_mater"),),
                        "studied",
                    )
                for company in founded_by.get(u, [])[:2]:
                    main.add(f"{first} founded {self.e(company).name}.")
                for invention in invented_by.get(u, [])[:2]:
                    main.add(f"{first} is credited with the invention of {self.e(invention).ref}.")
            elif kind == "city":
                main.lead(f"{name} is a city in the {entity.words['region']} region.")
                if "river" in r:
                    main.add(f"It lies on {self.e(r['river']).ref}.", ((u, "river"),), "lies on")
                main.add(
                    f"As of the last census it had a population of {_number(a['population'])}.",
                    ((u, "population"),),
                    "population",
                )
                founding = (f"{name} was founded in {a['founded_year']}.", ((u, "founded_year"),), "founded")
                if side is not None:
                    side.lead(*founding)
                    side.add(f"It was granted a town charter in {a['founded_year'] + rng.randint(20, 300)}.")
                    side.add(
                        f"During the {rng.choice(('wars', 'famine years', 'great plague'))} of "
                        f"{a['founded_year'] + rng.randint(50, 400)} the population fell sharply."
                    )
                else:
                    main.add(*founding)
                if u in born_in:
                    main.add(f"Notable people born in {name} include {listing(born_in[u])}.")
                for university in universities_in.get(u, [])[:2]:
                    main.add(f"{name} is home to {self.e(university).ref}.")
            elif kind == "company":
                founder = self.e(r["founder"]).name
                main.lead(
                    f"{name} is {_a(entity.words['industry'])} company headquartered in "
                    f"{self.e(r['headquarters']).name}.",
                    ((u, "headquarters"),),
                    "headquartered",
                )
                founding = (
                    f"{name} was founded in {a['founded_year']} by {founder}.",
                    ((u, "founded_year"), (u, "founder")),
                    "founded",
                )
                if side is not None:
                    side.lead(*founding)
                    side.add(f"Its first workshop stood in {self.pick('city').name}.")
                else:
                    main.add(*founding)
                main.add(
                    f"The company employs about {_number(a['employees'])} people.",
                    ((u, "employees"),),
                    "employs",
                )
                for invention in made_by.get(u, [])[:2]:
                    main.add(f"Its products have included {self.e(invention).ref}.")
            elif kind == "river":
                main.lead(f"{_capital(entity.ref)} is a river in the {entity.words['region']} region.")
                main.add(
                    f"It is {_number(a['length_km'])} kilometres long.", ((u, "length_km"),), "kilometres"
                )
                main.add(f"It rises in the {entity.words['mountains']} and flows into {entity.words['sea']}.")
                if u in cities_on:
                    main.add(f"Cities on its banks include {listing(cities_on[u], 4)}.")
            elif kind == "invention":
                main.lead(f"{_capital(entity.ref)} is {_a(entity.words['category'])} device.")
                main.add(
                    f"It was invented in {a['year']} by {self.e(r['inventor']).name}.",
                    ((u, "year"), (u, "inventor")),
                    "invented",
                )
                if "maker" in r:
                    main.add(
                        f"It was manufactured by {self.e(r['maker']).name}.", ((u, "maker"),), "manufactured"
                    )
            elif kind == "university":
                main.lead(
                    f"{_capital(entity.ref)} is {_a(entity.words['type'])} university in {self.e(r['city']).name}.",
                    ((u, "city"),),
                    "university in",
                )
                main.add(f"It was founded in {a['founded_year']}.", ((u, "founded_year"),), "founded")
            for sentence in self.fillers(entity, _filler_count(rng)):
                main.add(sentence)
            emit(main)
            if side is not None:
                for sentence in self.fillers(entity, rng.randint(2, 5)):
                    side.add(sentence)
                emit(side)

        titles = {doc.title for doc in docs}
        while len(docs) < self.size:
            city = self.pick("city")
            year = rng.randint(1750, 2010)
            title = f"{year} {city.name} {rng.choice(_EVENTS)}"
            if title in titles:
                continue
            titles.add(title)
            event = _Article(title)
            people = [self.pick("person").name for _ in range(2)]
            event.lead(f"The {title} took place in {city.name} in {year}.")
            event.add(f"Among those present were {people[0]} and {people[1]}.")
            event.add(f"Representatives of {self.pick('company').name} also attended.")
            if rng.random() < 0.5:
                event.add(f"A demonstration of {self.pick('invention').ref} drew large crowds.")
            event.add(
                f"Contemporary reports mention {rng.choice(_TOPICS)} and the weather in "
                f"{rng.choice(('spring', 'summer', 'autumn'))}."
            )
            emit(event)
        return docs[: self.size], facts


def generate_encyclopedia(size: int, seed: int = 0) -> Encyclopedia:
    """The encyclopedia of ``size`` documents for ``seed`` (deterministic; ~100k documents in seconds)."""
    if size < 50:
        raise ValueError(f"an encyclopedia needs at least 50 documents, not {size}")
    world = _World(size, seed)
    world.populate()
    documents, facts = world.render()
    kept = {doc.id for doc in documents}
    facts = {key: site for key, site in facts.items() if site.doc_id in kept}
    return Encyclopedia(
        size=size, seed=seed, entities=world.entities, by_kind=world.by_kind, documents=documents, facts=facts
    )
