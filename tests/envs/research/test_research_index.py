"""The BM25 index: persistent, chunked, deterministic; `agentkit index` builds it from a corpus file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit.envs.research.corpus import Document, write_corpus
from agentkit.envs.research.index import SearchIndex, build_index, chunk_spans, tokenize
from agentkit.envs.research.questions import fact_value
from agentkit.errors import ConfigError, DataError


def _filler(words: int, seed: int) -> str:
    return " ".join(f"filler{(seed * 7919 + i) % 50} word{i % 13}." for i in range(words // 2))


@pytest.fixture()
def long_corpus(tmp_path: Path) -> list[Document]:
    docs = [Document(f"d{i}", f"Plain Title {i}", _filler(60, i)) for i in range(30)]
    docs.append(
        Document(
            "long",
            "Long Document",
            _filler(600, 99) + " The zorbulax treaty was signed here. " + _filler(200, 98),
        )
    )
    return docs


def test_tokenize_and_chunk_spans() -> None:
    assert tokenize("The Oskar River is 1,240 kilometres long!") == [
        "oskar",
        "river",
        "1240",
        "kilometres",
        "long",
    ]
    text = " ".join(f"w{i}" for i in range(25))
    spans = chunk_spans(text, 10, 2)
    assert [text[a:b].split()[0] for a, b in spans] == ["w0", "w8", "w16"]
    assert text[spans[-1][0] : spans[-1][1]].split()[-1] == "w24"
    assert chunk_spans("short text", 10, 2) == [(0, 10)]


def test_build_load_and_find_a_passage_deep_in_a_long_document(tmp_path: Path, long_corpus) -> None:
    build_index(long_corpus, tmp_path / "idx", source="test")
    index = SearchIndex(tmp_path / "idx")
    manifest = index.manifest
    assert manifest["documents"] == 31 and manifest["engine"] == "bm25s"
    assert manifest["chunks"] > 31  # the long document is cut into several chunks
    (hit,) = index.search("zorbulax treaty", k=1)
    assert hit.doc_id == "long" and "zorbulax treaty" in hit.snippet
    text = index.get("long").text
    assert hit.offset > 2000 and text[hit.offset :].startswith(hit.snippet.rstrip("…")[:20])
    assert index.get("Long Document").id == "long" and index.get("nope") is None
    assert index.search("qwertyuiop", k=5) == [] and index.search("the of and", k=5) == []


def test_search_is_deterministic_across_reloads(index_path: Path, encyclopedia) -> None:
    queries = [f"{e.name} founded" for e in encyclopedia.entities[:40]]
    first = [SearchIndex(index_path).search(q, 5) for q in queries]
    second = [SearchIndex(index_path).search(q, 5) for q in queries]
    assert first == second
    assert all(len(hits) == 5 for hits in first)
    assert all(len({h.doc_id for h in hits}) == 5 for hits in first)


def test_entity_searches_rank_the_fact_document_high(index_path: Path, encyclopedia) -> None:
    """The query an agent would write (name + cue word) finds the document stating the fact."""
    index = SearchIndex(index_path)
    sites = list(encyclopedia.facts.items())[::7][:150]
    ranks = []
    for (uid, fact), site in sites:
        entity = encyclopedia.entity(uid)
        hits = index.search(f"{entity.name} {site.cue}", 10)
        ids = [h.doc_id for h in hits]
        ranks.append(ids.index(site.doc_id) if site.doc_id in ids else 10)
        if site.doc_id in ids[:1]:
            assert fact_value(encyclopedia, entity, fact) in index.get(site.doc_id).text
    top5 = sum(r < 5 for r in ranks) / len(ranks)
    assert top5 >= 0.9, ranks


def test_an_existing_index_is_replaced_but_other_directories_are_not(tmp_path: Path, long_corpus) -> None:
    out = tmp_path / "idx"
    build_index(long_corpus[:5], out)
    build_index(long_corpus, out)
    assert SearchIndex(out).manifest["documents"] == 31
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary directories left
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a research index"):
        build_index(long_corpus, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_damaged_or_foreign_indexes_are_data_errors(tmp_path: Path, long_corpus) -> None:
    with pytest.raises(DataError, match="not a research index"):
        SearchIndex(tmp_path)
    build_index(long_corpus, tmp_path / "idx")
    manifest = tmp_path / "idx" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": 99}))
    with pytest.raises(DataError, match="rebuild it"):
        SearchIndex(tmp_path / "idx")


def test_agentkit_index_command(tmp_path: Path, long_corpus, monkeypatch, capsys) -> None:
    from agentkit.cli import main

    monkeypatch.setenv("AGENTKIT_CONF", str(Path(__file__).resolve().parents[3] / "conf"))
    corpus = tmp_path / "corpus.parquet"
    write_corpus(corpus, long_corpus)
    main(["index", f"corpus={corpus}", f"out={tmp_path / 'idx'}", "chunk_words=50", "progress=false"])
    assert "indexed 31 documents" in capsys.readouterr().out
    index = SearchIndex(tmp_path / "idx")
    assert index.manifest["chunk_words"] == 50 and index.search("zorbulax", 1)[0].doc_id == "long"
    main(["index", "corpus=encyclopedia", "docs=300", "seed=3", f"out={tmp_path / 'enc'}", "progress=false"])
    assert SearchIndex(tmp_path / "enc").manifest["source"] == "generated:encyclopedia-v1-d300-s3"
    with pytest.raises(SystemExit):
        main(["index", f"corpus={corpus}", f"out={tmp_path / 'x'}", "chunk_wrds=50"])
    assert not (tmp_path / "x").exists()
