"""`iteratr demo`: one of the README's two commands; a whole session with the scripted agent."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST_ENV, run_cli


@pytest.fixture(autouse=True)
def _as_a_new_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README runs the demo with nothing set: no ITERATR_TRUST (which conftest sets for other tests)."""
    monkeypatch.delenv("ITERATR_TRUST", raising=False)


def test_demo_runs_a_whole_session_and_shows_its_history(tmp_path: Path) -> None:
    result = run_cli("demo", cwd=tmp_path, env=FAST_ENV, expect=0, timeout=120)
    out = result.stdout
    # Planning, then the three spec tasks and the one the user's message added, one commit each.
    commits = re.findall(r"^  [0-9a-f]{7,} iteratr\(greeter\): #(\d+) ", out, re.MULTILINE)
    assert commits == ["4", "3", "2", "1", "0"], out
    assert ">>> message from the user (MSG-1): Add a task: Write a CHANGELOG entry" in out
    assert "TAS-4: Write a CHANGELOG entry" in out
    assert "stopped: the session is complete (4 tasks)" in out
    assert "Iteratr-Iteration: 4" in out  # the last commit's message is shown
    assert_the_readme_sample_is_what_the_demo_prints(out)
    # The temporary repository is removed unless --keep is given.
    kept = re.search(r"demo: a temporary repository at (\S+)", out)
    assert kept and not Path(kept.group(1)).exists()


def test_demo_keep_leaves_the_repository_for_a_look(tmp_path: Path) -> None:
    result = run_cli("demo", "--keep", cwd=tmp_path, env=FAST_ENV, expect=0, timeout=120)
    kept = re.search(r"^kept: (\S+)", result.stdout, re.MULTILINE)
    assert kept, result.stdout
    repo = Path(kept.group(1))
    request_cleanup = repo.parent  # the demo made it with mkdtemp; --keep leaves it to us
    assert (repo / ".iteratr" / "greeter" / "events.jsonl").is_file()
    assert sorted(p.name for p in (repo / "work").iterdir()) == [
        "add-a-shout-option-that-upper-cases-the-greeting.txt",
        "document-both-in-the-readme.txt",
        "write-a-changelog-entry.txt",
        "write-greet-name-returning-hello-name.txt",
    ]
    shutil.rmtree(request_cleanup)


README = Path(__file__).resolve().parents[2] / "README.md"
# What differs from run to run: clock times, durations, commit ids.
VARYING = [(r"\d\d:\d\d:\d\d", "<time>"), (r"\b\d+\.\ds\b", "<secs>"), (r"\b[0-9a-f]{7}\b", "<sha>")]


def _steady(line: str) -> str:
    for pattern, stand_in in VARYING:
        line = re.sub(pattern, stand_in, line)
    return line


def assert_the_readme_sample_is_what_the_demo_prints(out: str) -> None:
    """README's "What a build prints" is the demo's build, cut where it says ``…``: every line of the sample
    matches a line the demo printed, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```\n", text.index("\n### What a build prints\n")) + 4
    sample = [line for line in text[start : text.index("```", start)].splitlines() if line.strip() != "…"]
    printed = [_steady(line) for line in out.splitlines()]
    # The message line is printed the moment the build takes the message, which can be before the hook that sent
    # it has printed its own line: it is looked for anywhere, the rest in order.
    for line in [line for line in sample if line.startswith(">>> ")]:
        assert line in printed, out + f"README's sample line not printed by the demo: {line!r}"
    at = 0
    for line in [line for line in sample if not line.startswith(">>> ")]:
        pattern = re.compile(".*".join(re.escape(part) for part in _steady(line).split("…")))
        at = next((i for i in range(at, len(printed)) if pattern.fullmatch(printed[i])), -1) + 1
        assert at, out + f"README's sample line not printed by the demo (after the lines matched before it): {line!r}"
