"""``iteratr report``'s page: a State and its events in, one self-contained HTML document out.

Pure: no I/O, no git, no clock (the caller passes the time it was made). The page has inline CSS and inline
SVG charts (``report_svg``), and no script, link, font or image: it opens offline and can be attached to a PR.
A Content-Security-Policy of ``default-src 'none'`` says the same to the browser, so even a mistake in
escaping could neither run code nor reach the network. Every text that came from the agent or the user (task
content, notes, summaries, errors, messages) goes through ``esc``.

Element classes the tests count: ``rect.bar`` (one per iteration), ``circle.point`` (burn-down),
``line.run-boundary`` and ``tr.run-start`` (one per run), ``tr.task``, ``section.note-type``, ``tr.message``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iteratr.commands import report_scan
from iteratr.commands.report_facts import Facts, gather
from iteratr.commands.report_scan import Timeline
from iteratr.commands.report_svg import OUTCOME_COLOURS, burndown_svg, esc, outcome_of, timeline_svg, usage_text
from iteratr.run import guards
from iteratr.session.state import TASK_STATUSES, State, Task
from iteratr.text import clock, duration_text

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:16px 24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:14px;margin:14px 0 4px}
.meta{color:#57606a;margin:0 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{border:1px solid #d0d7de;border-radius:6px;padding:6px 10px}
.card b{display:block;font-size:16px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;vertical-align:top;padding:3px 6px;border-bottom:1px solid #eaeef2}
th{background:#f6f8fa}td.num{text-align:right;white-space:nowrap}
.text{white-space:pre-wrap;overflow-wrap:anywhere;max-width:560px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px}
tr.run-start td{background:#eef4fb;color:#0b4f8a;font-weight:600}
.chart-box{overflow-x:auto;border:1px solid #d0d7de;border-radius:6px;padding:6px}
svg .axis{font-size:11px;fill:#57606a}svg .axis-line{stroke:#afb8c1}
svg .run-boundary{stroke:#0b4f8a;stroke-dasharray:4 3;stroke-width:1.5}
.legend span{margin-right:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.empty,.omitted{color:#57606a;font-style:italic}
"""


def render(
    state: State, events: Iterable[dict[str, Any]], *, session: str, branch: str, source: str, generated: str
) -> str:
    """The whole page. ``source`` says where the log was read (checkout, worktree, branch); ``generated`` is
    the UTC ISO-8601 time it was made. It counts everything and shows the detail of the last few of each kind
    (``report_scan``), saying what it left out, so its size and the memory it takes stay bounded."""
    scanned = report_scan.scan(state)
    shown_tasks = _shown_tasks(state)
    facts = gather(state, events, scanned, {t.id for t in shown_tasks})
    every = f" (a point every {facts.stride:,} iterations)" if facts.stride > 1 else ""
    body = [
        f"<h1>iteratr session {esc(session)}</h1>",
        f'<p class="meta">branch {esc(branch)} · read from {esc(source)} · made {esc(clock(generated))}</p>',
        _summary(state, scanned),
        _timeline(state, scanned, facts),
        f"<h2>Open tasks after each iteration{every}</h2>",
        '<div class="chart-box">'
        + burndown_svg([(n, facts.open_after[n]) for n in scanned.numbers() if n in facts.open_after])
        + "</div>",
        _tasks(state, shown_tasks, facts),
        _notes(state),
        _messages(state),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>iteratr report: {esc(session)}</title><style>{_CSS}</style></head>\n"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _omitted(shown: int, total: int, what: str, rest: str) -> str:
    """The line that says what a section left out, or nothing when it shows everything."""
    if total <= shown:
        return ""
    return f'<p class="omitted">The last {shown:,} of {total:,} {esc(what)} shown; {esc(rest)}.</p>'


def _summary(state: State, scanned: Timeline) -> str:
    totals = guards.session_totals(state)
    by_outcome = scanned.by_outcome
    counts = state.counts()
    done = counts.get("completed", 0)
    cards = [
        ("state", "complete" if state.complete else f"{done}/{len(state.tasks)} tasks done"),
        ("iterations", ", ".join(f"{v} {k}" for k, v in by_outcome.items()) or "none"),
        ("time", duration_text(scanned.duration)),
        (
            "tokens",
            f"{totals.tokens:,}" + (" (partial)" if totals.partial else "") if totals.tokens_known else "not reported",
        ),
        ("cost", f"{totals.cost:.4f} {totals.currency or ''}".rstrip() if totals.cost_known else "not reported"),
        ("runs", str(scanned.runs)),
    ]
    return (
        '<div class="cards">' + "".join(f'<div class="card">{esc(k)}<b>{esc(v)}</b></div>' for k, v in cards) + "</div>"
    )


def _timeline(state: State, scanned: Timeline, facts: Facts) -> str:
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{esc(name)}</span>' for name, colour in OUTCOME_COLOURS.items()
    )
    rows = []
    iterations = scanned.shown
    for it in iterations:
        if it.n in facts.run_starts:
            run = facts.run_starts[it.n]
            number = scanned.run_numbers.get(run, "?")
            rows.append(
                f'<tr class="run-start"><td colspan="6" title="{esc(run)}">'
                f"run {number} began {esc(clock(run))}</td></tr>"
            )
        outcome = outcome_of(it)
        detail = it.summary if outcome == "ok" else (it.error or it.summary or "")
        rows.append(
            f'<tr class="iteration outcome-{outcome}"><td>#{it.n}{" " + esc(it.kind) if it.kind != "main" else ""}</td>'
            f'<td><span class="badge" style="background:{OUTCOME_COLOURS[outcome]}">{esc(outcome)}</span></td>'
            f"<td>{esc(clock(it.started_ts))}</td><td class=num>{esc(duration_text(it.duration))}</td>"
            f"<td class=num>{esc(usage_text(it, state.currency))}</td>"
            f'<td class="text">{esc(detail or "")}</td></tr>'
        )
    table = (
        "<table><tr><th>iteration</th><th>outcome</th><th>started</th><th>took</th><th>usage</th>"
        "<th>summary or error</th></tr>" + "".join(rows) + "</table>"
        if iterations
        else ""
    )
    return (
        "<h2>Iterations</h2>"
        + _omitted(len(iterations), scanned.count, "iterations", "the summary above counts them all")
        + f'<p class="legend">{legend}<span>dashed line: a run began</span></p>'
        f'<div class="chart-box">{timeline_svg(iterations, facts.run_starts, state.currency)}</div>{table}'
    )


def _number(some_id: str) -> int:
    """``TAS-10`` -> 10 for sorting; an id a hand-edited log got wrong sorts last instead of failing the page."""
    tail = some_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 10**9


def _iterations_text(numbers: list[int]) -> str:
    if not numbers:
        return ""
    ranges: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        ranges.append(f"#{start}" if start == prev else f"#{start}–#{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(ranges) + f" ({len(numbers)})"


def _shown_tasks(state: State) -> list[Task]:
    """The open tasks (live: never the history) and the last done ones, by status then number."""
    order = {s: i for i, s in enumerate(TASK_STATUSES)}
    shown = state.tasks.live() + state.tasks.last_done(report_scan.DONE_TASKS)
    return sorted(shown, key=lambda t: (order.get(t.status, 9), _number(t.id)))


def _tasks(state: State, shown: list[Task], facts: Facts) -> str:
    if not state.tasks:
        return '<h2>Tasks</h2><p class="empty">No tasks yet.</p>'
    rows = []
    total = len(state.tasks)
    left_out = (
        f'<p class="omitted">Every open task and the last {len(shown) - len(state.tasks.live()):,} done ones shown, '
        f"{len(shown):,} of {total:,}; the summary above counts them all.</p>"
        if total > len(shown)
        else ""
    )
    for task in shown:
        span = facts.spans.get(task.id)
        deps = ", ".join(task.depends_on)
        rows.append(
            f'<tr class="task status-{esc(task.status)}"><td>{esc(task.id)}</td><td>P{task.priority}</td>'
            f'<td>{esc(task.status.replace("_", " "))}</td><td class="text">{esc(task.content)}</td>'
            f"<td>{esc(deps)}</td>"
            f"<td>{'' if span is None or span.started is None else f'#{span.started}'}</td>"
            f"<td>{'' if span is None or span.completed is None else f'#{span.completed}'}</td>"
            f"<td>{esc(_iterations_text(span.iterations if span else []))}</td></tr>"
        )
    return (
        "<h2>Tasks</h2>"
        + left_out
        + "<table><tr><th>id</th><th>priority</th><th>status</th><th>task</th><th>after</th>"
        "<th>started</th><th>completed</th><th>iterations in progress</th></tr>" + "".join(rows) + "</table>"
    )


def _notes(state: State) -> str:
    if not state.note_count:
        return '<h2>Notes</h2><p class="empty">No notes.</p>'
    last, counts = report_scan.notes_by_type(state)
    sections = []
    for kind, notes in last.items():
        items = "".join(
            f'<li class="note"><b>{esc(nid)}</b> (#{iteration}) <span class="text">{esc(content)}</span></li>'
            for nid, content, _type, iteration in notes
        )
        sections.append(
            f'<section class="note-type" data-type="{esc(kind)}">'
            f"<h3>{esc(kind)} ({counts[kind]:,})</h3>"
            + _omitted(len(notes), counts[kind], f"{kind} notes", "older ones are in the session's log")
            + f"<ul>{items}</ul></section>"
        )
    return "<h2>Notes</h2>" + "".join(sections)


def _messages(state: State) -> str:
    if not state.messages:
        return '<h2>Messages from you</h2><p class="empty">No messages.</p>'
    rows = []
    shown = report_scan.last_messages(state)
    for m in shown:
        went = f"#{m.delivered_to}" if m.delivered_to is not None else "not yet delivered"
        rows.append(
            f'<tr class="message"><td>{esc(m.id)}</td><td>{esc(clock(m.ts))}</td><td>{esc(went)}</td>'
            f'<td class="text">{esc(m.text)}</td></tr>'
        )
    return (
        "<h2>Messages from you</h2>"
        + _omitted(len(shown), len(state.messages), "messages", "older ones are in the session's log")
        + "<table><tr><th>id</th><th>received</th><th>went into</th><th>message</th></tr>"
        + "".join(rows)
        + "</table>"
    )
