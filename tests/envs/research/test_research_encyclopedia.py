"""The fictional encyclopedia: deterministic, exactly sized, and every recorded fact is where it says."""

from __future__ import annotations

from collections import Counter

from agentkit.envs.research.encyclopedia import KINDS, generate_encyclopedia
from agentkit.envs.research.questions import fact_value


def test_same_seed_same_corpus_other_seed_other_corpus(encyclopedia) -> None:
    again = generate_encyclopedia(encyclopedia.size, 0)
    assert again.fingerprint() == encyclopedia.fingerprint()
    assert [d.id for d in again.documents] == [d.id for d in encyclopedia.documents]
    assert generate_encyclopedia(encyclopedia.size, 1).fingerprint() != encyclopedia.fingerprint()


def test_size_ids_and_names_are_exact_and_unique(encyclopedia) -> None:
    docs = encyclopedia.documents
    assert len(docs) == encyclopedia.size
    assert len({d.id for d in docs}) == len(docs) and len({d.title for d in docs}) == len(docs)
    names = [e.name for e in encyclopedia.entities]
    assert len(set(names)) == len(names)
    kinds = Counter(e.kind for e in encyclopedia.entities)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 10


def test_every_fact_is_stated_at_its_recorded_offset(encyclopedia) -> None:
    texts = {d.id: d.text for d in encyclopedia.documents}
    assert len(encyclopedia.facts) > encyclopedia.size
    for (uid, fact), site in encyclopedia.facts.items():
        text = texts[site.doc_id]
        assert text[site.offset : site.offset + len(site.sentence)] == site.sentence
        assert fact_value(encyclopedia, encyclopedia.entity(uid), fact) in site.sentence
        assert site.cue.lower() in site.sentence.lower()


def test_facts_are_spread_over_side_articles_and_events_pad_the_corpus(encyclopedia) -> None:
    titles = [d.title for d in encyclopedia.documents]
    side = [t for t in titles if t.startswith(("Early life of ", "History of "))]
    assert len(side) > encyclopedia.size // 20
    fact_docs = {site.title for site in encyclopedia.facts.values()}
    assert any(t.startswith("Early life of ") for t in fact_docs)
    assert any(t.startswith("History of ") for t in fact_docs)
    main_titles = {e.name for e in encyclopedia.entities}
    events = [t for t in titles if t not in main_titles and t not in side]
    assert len(events) > encyclopedia.size // 20


def test_entity_names_do_not_come_from_a_fixed_list(encyclopedia) -> None:
    """Names are syllable compositions: the corpus for another seed shares almost no entity names."""
    other = {e.name for e in generate_encyclopedia(encyclopedia.size, 7).entities}
    mine = {e.name for e in encyclopedia.entities}
    assert len(mine & other) < len(mine) * 0.05
