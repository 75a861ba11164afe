"""`iteratr report` without a browser: the page's structure counted with html.parser, its escaping, that it
references nothing outside itself, and the command: where it writes, from where it works, bad input."""

from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest

from iteratr import fsutil
from iteratr.commands import report, report_html
from iteratr.errors import UsageError
from iteratr.output import Printer
from iteratr.session.reducer import replay
from tests.commands.report_session import (
    EXPECTED,
    EXPECTED_COUNTS,
    HOSTILE,
    Page,
    commit_known_session,
    expected_counts,
    known_events,
)
from tests.conftest import git, run_cli

NOW = "2026-01-04T12:00:00.000000Z"


def render(events: list[dict[str, Any]]) -> str:
    return report_html.render(
        replay(events), events, session="SPEC", branch="iteratr/SPEC", source="branch", generated=NOW
    )


def test_the_page_shows_every_iteration_task_note_type_message_and_run() -> None:
    page = Page(render(known_events()))

    counts = expected_counts(page)
    assert counts == EXPECTED_COUNTS
    bars = page.having("rect", "bar")
    assert [b["class"].split()[1] for b in bars] == [f"outcome-{o}" for o in EXPECTED.outcomes]
    assert len({b["fill"] for b in bars}) == 4  # ok, failed, interrupted, timeout: four colours
    text = "".join(page.text)
    opens = [int(m) for m in re.findall(r"after #\d+: (\d+) open", text)]
    assert tuple(opens) == EXPECTED.open_after
    assert tuple(s["data-type"] for s in page.having("section", "note-type")) == EXPECTED.note_types
    # duration, tokens and cost of an iteration, the iterations a task took, where a message went
    assert "#5 main: timeout, 30m00s, 30,000 tokens, 0.0900 USD" in text
    assert "#2–#3 (2)" in text  # TAS-2: in progress through the failed #2 and completed in #3
    assert "not yet delivered" in text
    assert "#3" in text.split("Messages from you")[1]  # MSG-1 went into iteration 3


def test_hostile_text_renders_as_text_and_never_as_markup() -> None:
    html = render(known_events())
    page = Page(html)

    assert not [t for t, _ in page.tags if t in ("script", "img")]
    text = "".join(page.text)
    assert HOSTILE in text  # the task, the note and the message show it, literally
    assert text.count(HOSTILE) >= 3
    assert "agent crashed: <img src=x onerror=alert(2)>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower() and "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")


def test_the_page_references_nothing_outside_itself() -> None:
    html = render(known_events())
    page = Page(html)

    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed", "base"), tag
        assert not {"src", "href", "xlink:href", "srcset", "action"} & set(attrs), (tag, attrs)
    assert not re.search(r"https?:|//|file:|data:[a-z]", html.lower().replace("img-src data:", ""))
    assert "url(" not in html and "@import" not in html
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]


def test_a_session_without_iterations_still_makes_a_page() -> None:
    page = Page(render([]))

    assert expected_counts(page) == dict.fromkeys(expected_counts(page), 0)
    assert "No iterations yet." in "".join(page.text)


# -- the command -----------------------------------------------------------------------------------------


def run_report(cwd: Path, **kwargs: Any) -> tuple[int, str]:
    out = io.StringIO()
    params: dict[str, Any] = {"name": "SPEC", "output": None, "data_dir": None, **kwargs}
    status = report.run(**params, cwd=cwd, out=Printer(stream=out))
    return status, out.getvalue().strip()


def test_from_another_branch_it_reads_the_session_from_its_branch_and_writes_an_ignored_file(repo: Path) -> None:
    commit_known_session(repo)

    status, printed = run_report(repo)

    assert status == 0
    assert printed == ".iteratr/SPEC/report.html"
    assert expected_counts(Page((repo / printed).read_text()))["bars"] == EXPECTED.bars
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""  # never one `git add -A` away
    assert git(repo, "branch", "--show-current") == "main"


def test_from_a_subdirectory_and_without_a_name_when_one_session_exists(repo: Path) -> None:
    commit_known_session(repo)
    sub = repo / "src" / "deep"
    sub.mkdir(parents=True)

    status, printed = run_report(sub, name=None)

    assert status == 0
    assert Path(printed) == repo / ".iteratr" / "SPEC" / "report.html"
    assert not (sub / ".iteratr").exists()


def test_on_the_session_branch_its_own_gitignore_keeps_the_report_out(repo: Path) -> None:
    commit_known_session(repo)
    git(repo, "switch", "-q", "iteratr/SPEC")

    run_report(repo)
    (repo / ".git" / "info" / "exclude").write_text("")  # only the branch's .gitignore is left to do it
    git(repo, "add", "--all")  # what a build's commit takes: everything git does not ignore

    assert (repo / ".iteratr" / "SPEC" / "report.html").is_file()
    assert "report.html" not in git(repo, "diff", "--cached", "--name-only")


def test_a_session_running_in_a_worktree_gets_its_report_there(repo: Path) -> None:
    commit_known_session(repo)
    worktree = repo / ".iteratr" / "worktrees" / "SPEC"
    git(repo, "worktree", "add", "-q", str(worktree), "iteratr/SPEC")

    status, printed = run_report(repo)

    assert status == 0
    assert repo / printed == worktree / ".iteratr" / "SPEC" / "report.html"
    assert git(worktree, "status", "--porcelain", "--untracked-files=all") == ""


def test_dash_o_writes_where_asked(repo: Path, tmp_path: Path) -> None:
    commit_known_session(repo)

    status, printed = run_report(repo, output="spec-report.html")

    assert status == 0 and printed == "spec-report.html"
    assert (repo / "spec-report.html").read_text().startswith("<!DOCTYPE html>")
    assert not (repo / ".iteratr" / "SPEC" / "report.html").exists()


def test_an_unknown_session_is_one_line_and_exit_2(repo: Path) -> None:
    commit_known_session(repo)

    result = run_cli("report", "-n", "NOPE", cwd=repo, expect=2)

    assert result.stderr.strip().splitlines() == [
        "iteratr: error: no session 'NOPE' in this repository (no branch iteratr/NOPE); sessions: SPEC"
    ]
    assert result.stdout == ""


def test_an_unwritable_output_is_one_line_and_exit_2_and_writes_nothing(repo: Path, tmp_path: Path) -> None:
    commit_known_session(repo)
    target = tmp_path / "missing-dir" / "report.html"

    result = run_cli("report", "-o", str(target), cwd=repo, expect=2)

    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot write the report to" in result.stderr and "No such file or directory" in result.stderr
    assert not target.parent.exists()


def test_a_write_failing_half_way_leaves_the_old_file_and_no_temp(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_known_session(repo)
    target = tmp_path / "report.html"
    target.write_text("the previous report")
    real_write = os.write
    calls = []

    def disk_full(fd: int, data: Any) -> int:
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data[:100]))  # a short write: the rest is still to come

    monkeypatch.setattr(os, "write", disk_full)  # fsutil writes through os.write
    with pytest.raises(UsageError, match="No space left on device"):
        run_report(repo, output=str(target))

    assert target.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(fsutil.TEMP_SUFFIX)] == []
