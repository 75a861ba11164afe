"""Each `say` is its own message, even when several wait for one take; the `>>>` line shows the whole of one."""

from __future__ import annotations

import io
from pathlib import Path

from iteratr.output import Printer
from iteratr.run.inbox import INBOX_HEADER, SAY_MARK, append, take
from iteratr.run.inbox_pump import SHOWN_CHARS, InboxPump, shown_message
from iteratr.session.store import Store


def test_two_says_while_no_build_runs_are_two_messages(tmp_path: Path) -> None:
    append(tmp_path, "first\nwith two lines")
    append(tmp_path, "second")
    first, second = take(tmp_path, {})
    assert (first.text, second.text) == ("first\nwith two lines", "second")
    assert first.source == second.source and first.end == second.start, "one file, ranges back to back"
    # Recorded up to the first only (a crash in between): the next take gives the second again, not the first.
    [again] = take(tmp_path, {first.source: first.end})
    assert (again.text, again.start, again.end) == ("second", second.start, second.end)
    assert take(tmp_path, {second.source: second.end}) == []


def test_text_saved_by_hand_stays_one_message_and_joins_the_say_it_follows(tmp_path: Path) -> None:
    (tmp_path / "inbox.md").write_text(INBOX_HEADER + "typed by hand\n\nstill the same save\n")
    append(tmp_path, "said")
    with (tmp_path / "inbox.md").open("a") as f:
        f.write("typed after it\n")
    assert [t.text for t in take(tmp_path, {})] == [
        "typed by hand\n\nstill the same save",
        "said\ntyped after it",
    ]


def test_a_mark_inside_a_message_does_not_split_it(tmp_path: Path) -> None:
    append(tmp_path, f"before {SAY_MARK} after")
    assert [t.text for t in take(tmp_path, {})] == ["before  after"]


def test_shown_message_caps_lines_and_characters() -> None:
    assert shown_message("  one line  \n") == ["one line"]
    assert shown_message("a\nb\nc") == ["a", "b", "c"]
    assert shown_message("\n".join("123456")) == ["1", "2", "3", "4", "5 …"]
    [long] = shown_message("x" * (SHOWN_CHARS + 1))
    assert long == "x" * SHOWN_CHARS + " …"
    lines = shown_message("y" * 300 + "\n" + "z" * 300 + "\nmore")
    assert lines == ["y" * 300, "z" * (SHOWN_CHARS - 300) + " …"]


def test_the_pump_prints_each_message_whole_under_its_own_line(tmp_path: Path) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    store.create()
    append(store.dir, "please also\nupdate the changelog")
    append(store.dir, "and nothing else")
    stream = io.StringIO()
    InboxPump(store, Printer(stream)).take()
    assert stream.getvalue().splitlines() == [
        ">>> message from the user (MSG-1): please also",
        "    update the changelog",
        ">>> message from the user (MSG-2): and nothing else",
    ]
    assert [m.text for m in store.load().messages.values()] == [
        "please also\nupdate the changelog",
        "and nothing else",
    ]
