"""`iteratr report` on a long generated session: the page is bounded (the last iterations, the open and last done
tasks, the last notes of each type), says what it left out, counts everything, and the state never loads its
history whole (iterations and notes streamed from the archive)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from iteratr.commands import report_facts, report_html, report_scan
from iteratr.commands.report_svg import outcome_of
from iteratr.session.reducer import replay
from iteratr.session.store import Store
from tests.commands.report_session import Page

BENCH = Path(__file__).resolve().parents[2] / "bench"
EVENTS = 20_000  # about 1,900 iterations and 5,000 notes: well past every limit of the page


def test_the_page_of_a_long_session_is_bounded_and_says_what_it_left_out(tmp_path: Path) -> None:
    log = tmp_path / ".iteratr" / "S" / "events.jsonl"
    subprocess.run(
        [sys.executable, str(BENCH / "gen_session.py"), "--events", str(EVENTS), "--out", str(log), "--no-checkpoint"],
        check=True,
        capture_output=True,
    )
    store = Store(tmp_path / ".iteratr", "S")
    store.load()  # the snapshot and its archive, as every later command finds them
    state = store.load()
    html = report_html.render(
        state, store.iter_events(), session="S", branch="iteratr/S", source="checkout", generated="2026-11-30T00:00:00Z"
    )
    assert state._notes is None and not state._all_its  # never every note or every iteration in memory

    everything = replay(store.events())
    timeline = report_facts.timeline(everything)
    assert len(timeline) > 5 * report_scan.ITERATIONS
    page = Page(html)
    text = "".join(page.text)
    assert len(html) < 600_000
    bars = page.having("rect", "bar")
    assert [int(b["data-n"]) for b in bars] == [it.n for it in timeline[-report_scan.ITERATIONS :]]
    assert f"The last {report_scan.ITERATIONS} of {len(timeline):,} iterations shown" in text
    outcomes: dict[str, int] = {}
    for it in timeline:
        outcomes[outcome_of(it)] = outcomes.get(outcome_of(it), 0) + 1
    assert ", ".join(f"{v} {k}" for k, v in outcomes.items()) in text  # the summary counts every iteration

    live = everything.tasks.live()
    done = [t for t in everything.tasks.values() if t.status in ("completed", "cancelled")]
    rows = page.having("tr", "task")
    assert len(rows) == len(live) + report_scan.DONE_TASKS
    shown = f"{len(rows):,} of {len(everything.tasks):,}"
    assert f"Every open task and the last {report_scan.DONE_TASKS} done ones shown, {shown}" in text
    assert len(done) > report_scan.DONE_TASKS

    points = [int(p["data-n"]) for p in page.having("circle", "point")]
    assert len(points) <= report_facts.POINTS + 2 and points[-1] == timeline[-1].n
    assert re.findall(r"after #\d+: (\d+) open", text)[-1] == str(len(live))  # the last iteration is running

    for section in page.having("section", "note-type"):
        kind = section["data-type"]
        count = sum(1 for n in everything.notes if n.type == kind)
        assert f"{kind} ({count:,})" in text
        assert f"The last {report_scan.NOTES} of {count:,} {kind} notes shown" in text
    assert html.count('<li class="note">') == report_scan.NOTES * len(page.having("section", "note-type"))
    messages = len(everything.messages)
    assert len(page.having("tr", "message")) == min(messages, report_scan.MESSAGES)


def test_the_spans_of_the_tasks_shown_are_those_of_a_full_pass(tmp_path: Path) -> None:
    log = tmp_path / ".iteratr" / "S" / "events.jsonl"
    subprocess.run(
        [sys.executable, str(BENCH / "gen_session.py"), "--events", "6000", "--out", str(log), "--no-checkpoint"],
        check=True,
        capture_output=True,
    )
    store = Store(tmp_path / ".iteratr", "S")
    store.load()
    state = store.load()
    shown = {t.id for t in state.tasks.live() + state.tasks.last_done(report_scan.DONE_TASKS)}
    streamed = report_facts.gather(state, store.iter_events(), task_ids=shown)
    full = report_facts.gather(replay(store.events()), store.events())
    for task_id in shown:
        mine, theirs = streamed.spans.get(task_id), full.spans.get(task_id)
        assert (mine.iterations if mine else []) == (theirs.iterations if theirs else []), task_id
    fold = report_facts.SpanFold()  # the open tasks after each iteration as the report counted them before
    open_after: dict[int, int] = {}
    for ev in store.iter_events():
        fold.add(ev)
        if ev["type"] == "iteration.ended":
            open_after[ev["data"]["n"]] = sum(1 for s in fold.status.values() if s not in ("completed", "cancelled"))
    assert streamed.stride > 1
    assert {n: v for n, v in streamed.open_after.items() if n in open_after} == {
        n: open_after[n] for n in streamed.open_after if n in open_after
    }
    assert len([n for n in streamed.open_after if n in open_after]) > 100
