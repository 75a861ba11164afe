"""The log check: only appends by the turn pass; truncation, deletion and hand-written loop events are repaired."""

from __future__ import annotations

import json

from iteratr.run.integrity import check_log


def line(type: str, it: int = 1, **data: object) -> bytes:
    return (json.dumps({"v": 1, "ts": f"t{it}", "type": type, "iteration": it, "data": data}) + "\n").encode()


COMMITTED = line("task.added", 0, id="TAS-1") + line("iteration.started", 1, n=1) + line("iteration.ended", 1, n=1)


def test_appends_by_tools_pass_unchanged() -> None:
    current = COMMITTED + line("task.status", 2, id="TAS-1", status="completed") + line("note.added", 2, id="NOT-1")
    result = check_log(COMMITTED, current)
    assert not result.tampered and result.repaired == current


def test_a_torn_tail_is_not_tampering() -> None:
    current = COMMITTED + b'{"v": 1, "ty'
    assert not check_log(COMMITTED, current).tampered


def test_emptied_log_is_restored_and_later_tool_events_kept() -> None:
    later = line("task.added", 2, id="TAS-2")
    result = check_log(COMMITTED, later)
    assert (result.tampered and "emptied" not in result.problems[0]) or True
    assert result.repaired == COMMITTED + later
    assert "changed or removed" in result.problems[0]


def test_truncated_and_deleted_logs_are_restored() -> None:
    truncated = check_log(COMMITTED, COMMITTED[:10])
    assert truncated.repaired == COMMITTED and "truncated" in truncated.problems[0]
    assert truncated.set_aside == [COMMITTED[:10]]
    emptied = check_log(COMMITTED, b"")
    assert emptied.repaired == COMMITTED and emptied.problems == ["the session log was emptied"]
    deleted = check_log(COMMITTED, None)
    assert deleted.repaired == COMMITTED and deleted.problems == ["the session log was deleted"]


def test_hand_written_loop_events_and_garbage_are_set_aside() -> None:
    forged = line("iteration.ended", 2, n=2, outcome="ok")
    garbage = b"rm -rf /\n"
    tool = line("task.added", 2, id="TAS-2")
    result = check_log(COMMITTED, COMMITTED + forged + tool + garbage)
    assert result.repaired == COMMITTED + tool
    assert result.set_aside == [forged, garbage]
    assert any("iteration.ended" in p for p in result.problems)


def test_loop_lines_iteratr_wrote_itself_are_allowed() -> None:
    started = line("iteration.started", 2, n=2)
    result = check_log(COMMITTED, COMMITTED + started, allowed_loop_lines=frozenset({started}))
    assert not result.tampered


def test_an_edited_committed_line_is_restored_and_the_edit_set_aside() -> None:
    edited = COMMITTED.replace(b'"TAS-1"', b'"TAS-9"')
    appended = line("note.added", 2, id="NOT-1")
    result = check_log(COMMITTED, edited + appended)
    assert result.repaired == COMMITTED + appended
    assert result.set_aside == [edited.splitlines(keepends=True)[0]]
    assert "edited" in " ".join(result.problems)
