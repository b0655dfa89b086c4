"""``agentkit view``: the index, the API, and the page in a real headless Chromium (Debian's package).

The browser tests load the page with state in the URL (a filter, an opened trajectory, the comparison)
and read the DOM after the page's own JavaScript ran; screenshots are kept under
``$AGENTKIT_ARTIFACTS`` (default ``.pytest-artifacts/``) as test artifacts. Without Chromium the
browser tests skip, except in CI (``AGENTKIT_REQUIRE_BROWSER=1``), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from asgi_server import serve_in_thread

from agentkit.synth.view import RunIndex, create_view_app, rewrite_args

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AGENTKIT_ARTIFACTS", ROOT / ".pytest-artifacts")) / "view"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("AGENTKIT_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is not installed (apt-get install chromium) and AGENTKIT_REQUIRE_BROWSER=1")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A real synth run ("mid-trained") and the same tasks failing ("pre-train only")."""
    base = tmp_path_factory.mktemp("view")
    good = base / "midtrained"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentkit.cli",
            "synth",
            "env=tooluse",
            "policy=reference",
            "strategy=teacher",
            "env.tasks.n=8",
            "report.progress=false",
            f"out={good}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    bad = base / "pretrained"
    (bad / "raw").mkdir(parents=True)
    lines = []
    for number, line in enumerate((good / "raw" / "rollouts.jsonl").read_text().splitlines()):
        record = json.loads(line)
        if number % 2:
            record["verdict"] = {
                "passed": False,
                "reward": 0.0,
                "reason": "final state differs: order not found",
            }
            record["reward"] = 0.0
        if number % 3 == 0:
            record["status"] = "max_turns"
        lines.append(json.dumps(record))
    (bad / "raw" / "rollouts.jsonl").write_text("\n".join(lines) + "\n")
    return good, bad


def test_index_reads_by_offset_pages_and_is_cached(tmp_path):
    run = tmp_path / "big" / "raw"
    run.mkdir(parents=True)
    with open(run / "rollouts.jsonl", "w") as handle:
        for i in range(3000):
            handle.write(
                json.dumps(
                    {
                        "id": f"t{i}",
                        "task": {
                            "id": f"task-{i % 50}",
                            "env": "math",
                            "prompt": "?",
                            "meta": {"kind": f"k{i % 3}"},
                        },
                        "messages": [
                            {"role": "user", "content": "?"},
                            {"role": "assistant", "content": "x" * (i % 40)},
                        ],
                        "status": "completed",
                        "reward": float(i % 2),
                        "verdict": {"passed": bool(i % 2), "reason": f"r{i}"},
                        "stats": {"turns": 1 + i % 5},
                        "provenance": {"strategy": "direct"},
                        "abilities": ["self_correction"] if i % 10 == 0 else [],
                    }
                )
                + "\n"
            )
    index = RunIndex(tmp_path / "big")
    assert (
        len(index.rows) == 3000
        and index.read(2999)["id"] == "t2999"
        and index.read(17)["verdict"]["reason"] == "r17"
    )
    assert (tmp_path / "big" / ".agentkit-view").is_dir()
    started = time.perf_counter()
    again = RunIndex(tmp_path / "big")  # from the cache: no record is parsed again
    assert again.rows == index.rows and time.perf_counter() - started < 5
    with open(run / "rollouts.jsonl", "a") as handle:  # a changed file invalidates the cache
        handle.write(
            json.dumps(
                {
                    "id": "late",
                    "task": {"id": "x", "env": "code", "prompt": "?"},
                    "messages": [],
                    "status": "max_turns",
                }
            )
            + "\n"
        )
    assert len(RunIndex(tmp_path / "big").rows) == 3001

    from fastapi.testclient import TestClient

    client = TestClient(create_view_app([index]))
    page = client.get(
        "/api/trajectories",
        params={"run": 0, "page": 2, "size": 25, "verdict": "passed", "family": "k1", "min_turns": 3},
    ).json()
    assert len(page["rows"]) == 25 and all(
        r["passed"] and r["family"] == "k1" and r["turns"] >= 3 for r in page["rows"]
    )
    assert page["total"] == sum(
        1 for r in index.rows if r["passed"] and r["family"] == "k1" and r["turns"] >= 3
    )
    assert "messages" not in page["rows"][0]  # the table never ships whole trajectories
    tagged = client.get("/api/trajectories", params={"ability": "self_correction", "size": 500}).json()
    assert tagged["total"] == 300 and all(
        r["id"] in {f"t{i}" for i in range(0, 3000, 10)} for r in tagged["rows"]
    )
    assert client.get("/api/runs").json()[0]["facets"]["ability"] == ["self_correction"]
    assert client.get("/api/trajectory", params={"run": 0, "i": 5}).json()["record"]["id"] == "t5"
    assert client.get("/api/trajectory", params={"run": 0, "i": 99999}).status_code == 404
    assert client.get("/api/trajectory", params={"run": 3, "i": 0}).status_code == 404
    assert rewrite_args(["runs/a", "runs/b", "port=1"]) == ["port=1", 'runs=["runs/a","runs/b"]']


def _browse(url: str, shot: str, *, size: str = "1500,1000") -> str:
    """Load ``url`` in headless Chromium, save a screenshot, return the DOM after the scripts ran."""
    chromium = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    common = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={size}",
        "--virtual-time-budget=15000",
    ]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-1500:]
    shot_path = ARTIFACTS / shot
    done = subprocess.run(
        [*common, f"--screenshot={shot_path}", url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and shot_path.read_bytes()[:4] == b"\x89PNG", done.stderr[-1500:]
    return dom.stdout


@pytest.mark.slow
def test_the_page_in_headless_chromium(runs):
    _chromium()
    good, bad = runs
    indexes = [RunIndex(bad), RunIndex(good)]
    with serve_in_thread(create_view_app(indexes)) as url:
        listing = _browse(url + "/", "list.png")
        assert 'data-ready="1"' in listing and 'id="traj-table"' in listing
        assert (
            len(re.findall(r'<tr class="row[^"]*" data-i="\d+"', listing)) == 8
            and "8 of 8 trajectories" in listing
        )

        failed = _browse(url + "/#run=0&verdict=failed", "list-failed.png")
        rows = re.findall(r'<tr class="row[^"]*" data-i="(\d+)"', failed)
        expected = [i for i, r in enumerate(indexes[0].rows) if r["passed"] is False]
        assert [int(i) for i in rows] == expected and len(expected) == 4
        assert "badge pass" not in failed.split('id="traj-table"')[1].split("</table>")[0]

        opened = _browse(url + "/#run=1&open=3", "trajectory.png", size="1500,1300")
        record = indexes[1].read(3)
        assert f'data-loaded="{record["id"]}"' in opened
        assert '<details class="think">' in opened and 'class="call"' in opened and "observation" in opened
        assert record["verdict"]["reason"] in opened and "chat template sha256" in opened

        task = record["task"]["id"]
        compared = _browse(url + f"/#tab=compare&task={task}", "compare.png", size="1600,1300")
        assert (
            'id="compare"' in compared and len(re.findall(r'<div class="card col"><h3>[a-z]', compared)) == 2
        )
        assert "pretrained" in compared and "midtrained" in compared

        plots = _browse(url + "/#tab=plots&run=1", "plots.png", size="1500,1500")
        assert len(re.findall(r'<img alt="[a-z_]+\.png"', plots)) == 5 and "pass_rate_by_family.png" in plots
        with httpx.Client() as http:
            image = http.get(url + "/plots/1/pass_rate_by_family.png")
        assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
