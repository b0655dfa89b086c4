"""Research index benchmark: build time and queries/s of the bm25s index on a generated encyclopedia
(100k documents by default), side by side with a naive scan baseline (no index: every query counts
its terms in every document), on the same queries, with retrieval quality for both.

Queries are what an agent writes for one hop: an entity's name and a cue word ("Varnholm population");
a query is answered when the document that states the fact is among the top 5.

    .venv/bin/python bench/research_index.py [--docs 100000] [--queries 2000] [--scan-queries 30]
"""

from __future__ import annotations

import argparse
import heapq
import random
import shutil
import tempfile
import time
from pathlib import Path


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


class ScanBaseline:
    """No index: lowercase every document once, then score each query by term counts in every document."""

    def __init__(self, documents):
        self.ids = [d.id for d in documents]
        self.titles = [d.title.lower() for d in documents]
        self.texts = [d.text.lower() for d in documents]

    def search(self, query: str, k: int) -> list[str]:
        from agentkit.envs.research.index import tokenize

        terms = list(dict.fromkeys(tokenize(query)))
        scores = []
        for row, (title, text) in enumerate(zip(self.titles, self.texts, strict=True)):
            score = 0
            for term in terms:
                score += text.count(term) + 3 * title.count(term)
            if score:
                scores.append((score, -row))
        return [self.ids[-row] for _, row in heapq.nlargest(k, scores)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=2000, help="queries timed on the index")
    parser.add_argument("--scan-queries", type=int, default=30, help="queries timed on the naive scan")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="index directory (default: a temporary one)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from agentkit.envs.research.encyclopedia import generate_encyclopedia
    from agentkit.envs.research.index import SearchIndex, build_index
    from agentkit.envs.research.questions import QUERY_WORD

    console = Console(stderr=True)
    tmp = None
    out = args.out
    if out is None:
        tmp = Path(tempfile.mkdtemp(prefix="research-bench-"))
        out = tmp / "index"
    try:
        console.print(f"generating an encyclopedia of {args.docs:,} documents (seed {args.seed})...")
        started = time.perf_counter()
        enc = generate_encyclopedia(args.docs, args.seed)
        generate_s = time.perf_counter() - started
        corpus_mb = sum(len(d.text.encode()) for d in enc.documents) / 2**20

        started = time.perf_counter()
        build_index(
            enc.documents, out, source=f"generated:{enc.key}", total=len(enc.documents), progress=True
        )
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        index = SearchIndex(out)
        load_s = time.perf_counter() - started

        rng = random.Random(args.seed)
        facts = list(enc.facts.items())
        sample = [facts[rng.randrange(len(facts))] for _ in range(args.queries)]
        queries = [
            (f"{enc.entity(uid).name} {QUERY_WORD[fact]}", site.doc_id) for (uid, fact), site in sample
        ]

        started = time.perf_counter()
        bm25_results = [[h.doc_id for h in index.search(q, args.k)] for q, _ in queries]
        bm25_s = time.perf_counter() - started
        bm25_qps = len(queries) / bm25_s
        bm25_recall = sum(doc in got for (_, doc), got in zip(queries, bm25_results, strict=True)) / len(
            queries
        )

        started = time.perf_counter()
        scan = ScanBaseline(enc.documents)
        prepare_s = time.perf_counter() - started
        subset = queries[: args.scan_queries]
        started = time.perf_counter()
        scan_results = [scan.search(q, args.k) for q, _ in subset]
        scan_s = time.perf_counter() - started
        scan_qps = len(subset) / scan_s
        scan_recall = sum(doc in got for (_, doc), got in zip(subset, scan_results, strict=True)) / len(
            subset
        )
        bm25_subset_recall = sum(
            doc in got for (_, doc), got in zip(subset, bm25_results, strict=False)
        ) / len(subset)

        table = Table(
            title=f"research index on {len(enc.documents):,} documents ({corpus_mb:.0f} MB of text)"
        )
        for column in ("", "bm25s index", "naive scan"):
            table.add_column(column, justify="right")
        table.add_row(
            "preparation (s)", f"{build_s:.1f} build + {load_s:.2f} load", f"{prepare_s:.1f} lowercase"
        )
        table.add_row("queries timed", f"{len(queries)}", f"{len(subset)}")
        table.add_row("queries/s", f"{bm25_qps:.1f}", f"{scan_qps:.2f}")
        table.add_row("ms/query", f"{1000 / bm25_qps:.2f}", f"{1000 / scan_qps:.0f}")
        table.add_row(
            f"recall@{args.k} (same {len(subset)} queries)", f"{bm25_subset_recall:.3f}", f"{scan_recall:.3f}"
        )
        table.add_row(f"recall@{args.k} (all {len(queries)} queries)", f"{bm25_recall:.3f}", "-")
        console.print(table)

        manifest = index.manifest
        lines = {
            "docs": len(enc.documents),
            "chunks": manifest["chunks"],
            "vocabulary": manifest["vocabulary"],
            "corpus_mb": round(corpus_mb, 1),
            "index_disk_mb": round(_dir_mb(out), 1),
            "generate_seconds": round(generate_s, 2),
            "index_build_seconds": round(build_s, 2),
            "index_build_docs_per_second": round(len(enc.documents) / build_s, 1),
            "index_load_seconds": round(load_s, 3),
            "bm25_queries_per_second": round(bm25_qps, 1),
            "scan_queries_per_second": round(scan_qps, 3),
            "scan_prepare_seconds": round(prepare_s, 2),
            "query_speedup_ratio": round(bm25_qps / scan_qps, 1),
            f"bm25_recall_at_{args.k}": round(bm25_recall, 4),
            f"bm25_recall_at_{args.k}_scan_subset": round(bm25_subset_recall, 4),
            f"scan_recall_at_{args.k}": round(scan_recall, 4),
        }
        index.close()
        for name, value in lines.items():
            print(f"{name}: {value}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
