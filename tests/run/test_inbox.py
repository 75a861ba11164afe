"""The inbox with real files, real writer processes and the real watcher."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iteratr.errors import UsageError
from iteratr.run import inbox
from iteratr.run.inbox import (
    INBOX_HEADER,
    MAX_MESSAGE_BYTES,
    SAY_MARK,
    Taken,
    append,
    ensure_inbox,
    has_text,
    release,
    take,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sdir(tmp_path: Path) -> Path:
    path = tmp_path / ".iteratr" / "s"
    path.mkdir(parents=True)
    ensure_inbox(path)
    return path


def takings(sdir: Path) -> list[str]:
    return sorted(p.name for p in sdir.glob("inbox.taking-*"))


def age(path: Path, seconds: float = 60) -> None:
    """Make a file look untouched for a while, instead of waiting."""
    old = time.time() - seconds
    os.utime(path, (old, old))


class Caller:
    """What the build loop does: record each Taken's (source, end), then release."""

    def __init__(self, sdir: Path) -> None:
        self.sdir = sdir
        self.consumed: dict[str, int] = {}
        self.taken: list[Taken] = []

    def drain(self) -> list[Taken]:
        new = take(self.sdir, self.consumed)
        for item in new:
            assert item.start == self.consumed.get(item.source, 0), "a range must start where the last ended"
            self.consumed[item.source] = item.end
        self.taken.extend(new)
        release(self.sdir, self.consumed)
        return new

    def texts(self) -> list[str]:
        return [t.text for t in self.taken]

    def lines(self) -> list[str]:
        return [line for t in self.taken for line in t.text.splitlines() if line.strip()]


# --- the file itself -------------------------------------------------------------------------------------


def test_ensure_inbox_writes_header_once_and_keeps_existing_text(tmp_path: Path) -> None:
    path = ensure_inbox(tmp_path)
    assert path == tmp_path / "inbox.md"
    assert path.read_text() == INBOX_HEADER
    assert all(line.startswith("<!--") and line.endswith("-->") for line in INBOX_HEADER.splitlines())
    assert "iteratr say" in INBOX_HEADER
    path.write_text(INBOX_HEADER + "keep me\n")
    ensure_inbox(tmp_path)
    assert path.read_text() == INBOX_HEADER + "keep me\n"


def test_ensure_inbox_without_session_dir_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no session directory"):
        ensure_inbox(tmp_path / "missing")


def test_has_text_ignores_comments_and_whitespace(sdir: Path) -> None:
    path = sdir / "inbox.md"
    assert not has_text(sdir)
    path.write_text(INBOX_HEADER + "\n  \n<!-- my own note\nspanning lines -->\n\t\n")
    assert not has_text(sdir)
    path.write_text(INBOX_HEADER + "x\n")
    assert has_text(sdir)
    path.unlink()
    assert not has_text(sdir)


def test_take_of_an_empty_inbox_takes_nothing_and_leaves_it(sdir: Path) -> None:
    (sdir / "inbox.md").write_text(INBOX_HEADER + "\n\n<!-- only a comment -->\n")
    assert take(sdir, {}) == []
    assert takings(sdir) == []
    assert (sdir / "inbox.md").read_text() == INBOX_HEADER + "\n\n<!-- only a comment -->\n"


def test_take_recreates_a_deleted_inbox(sdir: Path) -> None:
    (sdir / "inbox.md").unlink()
    assert take(sdir, {}) == []
    assert (sdir / "inbox.md").read_text() == INBOX_HEADER


# --- saving styles ---------------------------------------------------------------------------------------


def save_truncate(path: Path, text: str) -> None:
    with path.open("w") as f:
        f.write(INBOX_HEADER + text)


def save_rename_over(path: Path, text: str) -> None:
    tmp = path.with_name(".inbox.md.swp-tmp")
    tmp.write_text(INBOX_HEADER + text)
    os.replace(tmp, path)


def save_append_sh(path: Path, text: str) -> None:
    subprocess.run(
        ["sh", "-c", 'printf "%s" "$1" >> "$2"', "sh", text, str(path)], check=True, stdin=subprocess.DEVNULL
    )


SAVE_STYLES: dict[str, Callable[[Path, str], None]] = {
    "truncate-write": save_truncate,
    "rename-over": save_rename_over,
    "append-sh": save_append_sh,
}


@pytest.mark.parametrize("style", sorted(SAVE_STYLES))
def test_each_save_style_is_taken_once_and_the_inbox_goes_back_to_its_header(sdir: Path, style: str) -> None:
    caller = Caller(sdir)
    SAVE_STYLES[style](sdir / "inbox.md", "the tests are in tests/unit\nnot test/\n")
    caller.drain()
    assert caller.texts() == ["the tests are in tests/unit\nnot test/"]
    assert (sdir / "inbox.md").read_text() == INBOX_HEADER
    assert not has_text(sdir)
    caller.drain()
    assert caller.texts() == ["the tests are in tests/unit\nnot test/"], "taken twice"


def test_several_quick_saves_of_mixed_styles_each_land_once_in_order(sdir: Path) -> None:
    caller = Caller(sdir)
    path = sdir / "inbox.md"
    save_truncate(path, "one\n")
    save_append_sh(path, "two\n")
    caller.drain()
    save_rename_over(path, "three\n")
    save_append_sh(path, "four\n")
    save_append_sh(path, "five\n")
    caller.drain()
    save_truncate(path, "six\n")
    caller.drain()
    caller.drain()
    assert caller.lines() == ["one", "two", "three", "four", "five", "six"]


def test_a_writer_that_opened_the_inbox_before_a_take_is_not_lost(sdir: Path) -> None:
    caller = Caller(sdir)
    path = sdir / "inbox.md"
    with path.open("a") as late:
        late.write("first\n")
        late.flush()
        caller.drain()
        assert caller.texts() == ["first"]
        late.write("late line\n")  # lands in the inode that was renamed away
    caller.drain()
    assert caller.texts() == ["first", "late line"]
    assert caller.taken[0].source == caller.taken[1].source
    caller.drain()
    assert caller.texts() == ["first", "late line"]


def test_late_text_in_an_older_taking_file_comes_before_newer_text(sdir: Path) -> None:
    caller = Caller(sdir)
    path = sdir / "inbox.md"
    late = path.open("a")
    late.write("a\n")
    late.flush()
    caller.drain()
    late.write("b\n")  # old inode, written before c was saved
    late.close()
    save_append_sh(path, "c\n")
    caller.drain()
    assert caller.lines() == ["a", "b", "c"]


# --- crash safety and cleanup ----------------------------------------------------------------------------


def test_a_crash_before_recording_takes_the_same_text_again(sdir: Path) -> None:
    save_truncate(sdir / "inbox.md", "skip the docs task\n")
    first = take(sdir, {})
    # crash: nothing recorded, nothing released
    again = take(sdir, {})
    assert [t.text for t in first] == ["skip the docs task"]
    assert [(t.source, t.start, t.end, t.text) for t in again] == [(t.source, t.start, t.end, t.text) for t in first]


def test_a_crash_after_recording_before_release_doubles_nothing(sdir: Path) -> None:
    save_truncate(sdir / "inbox.md", "also add a changelog\n")
    (item,) = take(sdir, {})
    recorded = {item.source: item.end}
    # crash before release: the taking file is still there
    assert takings(sdir) == [item.source]
    assert take(sdir, recorded) == []
    save_append_sh(sdir / "inbox.md", "next\n")
    assert [t.text for t in take(sdir, recorded)] == ["next"]


def test_release_waits_for_the_grace_period_and_for_the_caller_to_record(sdir: Path) -> None:
    save_truncate(sdir / "inbox.md", "hello\n")
    (item,) = take(sdir, {})
    source = sdir / item.source
    release(sdir, {})
    age(source)
    release(sdir, {})
    assert source.exists(), "deleted a file whose text was never recorded"
    source.touch()
    release(sdir, {item.source: item.end}, grace=2.0)
    assert source.exists(), "deleted a file a late writer may still be appending to"
    age(source)
    release(sdir, {item.source: item.end}, grace=2.0)
    assert not source.exists()


def test_release_removes_a_taking_file_left_with_only_whitespace(sdir: Path) -> None:
    path = sdir / "inbox.md"
    with path.open("a") as late:
        late.write("msg\n")
        late.flush()
        (item,) = take(sdir, {})
        late.write("\n\n<!-- nothing -->\n")
    assert take(sdir, {item.source: item.end}) == []
    age(sdir / item.source)
    release(sdir, {item.source: item.end})
    assert takings(sdir) == []


def test_a_taking_file_rewritten_shorter_is_read_again_from_the_start(sdir: Path) -> None:
    save_truncate(sdir / "inbox.md", "a long first message\n")
    (item,) = take(sdir, {})
    (sdir / item.source).write_text("new\n")
    (again,) = take(sdir, {item.source: item.end})
    assert (again.start, again.text) == (0, "new")


# --- bad input -------------------------------------------------------------------------------------------


def test_non_utf8_bytes_are_replaced_with_a_warning(sdir: Path) -> None:
    path = sdir / "inbox.md"
    path.write_bytes(INBOX_HEADER.encode() + b"caf\xe9 \xff ok\n")
    (item,) = take(sdir, {})
    assert item.text == "caf\ufffd \ufffd ok"
    assert item.warning is not None and "UTF-8" in item.warning
    path.write_text("caf\u00e9 \ufffd fine\n")
    (clean_item,) = take(sdir, {item.source: item.end})
    assert (clean_item.text, clean_item.warning) == ("caf\u00e9 \ufffd fine", None)


def test_an_oversized_message_is_moved_aside_whole_not_truncated(sdir: Path) -> None:
    body = "".join(f"line {i:06d} " + "x" * 50 + "\n" for i in range(1200))
    assert len(body) > MAX_MESSAGE_BYTES
    save_truncate(sdir / "inbox.md", body)
    (item,) = take(sdir, {})
    assert item.text == ""
    assert item.rejected_path is not None
    assert item.rejected_path.parent == sdir / "rejected"
    assert item.rejected_path.suffix == ".md"
    assert item.rejected_path.read_bytes() == (INBOX_HEADER + body).encode()
    (again,) = take(sdir, {})  # a crash before recording: same file, not a second copy
    assert again.rejected_path == item.rejected_path
    assert len(list((sdir / "rejected").iterdir())) == 1
    assert take(sdir, {item.source: item.end}) == []


def test_a_huge_inbox_is_moved_aside_without_reading_it_into_one_message(sdir: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (sdir / "inbox.md").write_bytes(b"hello\n" + data)
    (item,) = take(sdir, {})
    assert item.text == "" and item.rejected_path is not None
    assert item.rejected_path.read_bytes() == b"hello\n" + data
    assert item.end == len(data) + 6


def test_text_exactly_at_the_limit_is_delivered(sdir: Path) -> None:
    body = "y" * MAX_MESSAGE_BYTES
    save_truncate(sdir / "inbox.md", body + "\n")
    (item,) = take(sdir, {})
    assert item.text == body and item.rejected_path is None


# --- a writer mid-save -----------------------------------------------------------------------------------


def test_a_split_utf8_character_is_held_back_until_the_writer_finishes(sdir: Path) -> None:
    path = sdir / "inbox.md"
    with path.open("ab") as writer:
        writer.write("caf\u00e9 and cr".encode() + "\u00e8".encode()[:1])
        writer.flush()
        (first,) = take(sdir, {})
        writer.write("\u00e8".encode()[1:] + b"me\n")
    assert (first.text, first.warning) == ("caf\u00e9 and cr", None)
    (second,) = take(sdir, {first.source: first.end})
    assert (second.text, second.warning) == ("\u00e8me", None)


def test_a_half_written_tail_left_alone_is_taken_once_it_has_settled(sdir: Path) -> None:
    path = sdir / "inbox.md"
    path.write_bytes(b"broken \xe2\x82")
    (first,) = take(sdir, {})  # fresh: the writer may be mid-character
    assert (first.text, first.warning) == ("broken", None)
    consumed = {first.source: first.end}
    assert take(sdir, consumed) == []
    age(sdir / first.source)
    (rest,) = take(sdir, consumed)
    assert (rest.start, rest.end) == (first.end, first.end + 2)
    assert rest.text == "\ufffd" and rest.warning is not None


def test_an_unclosed_comment_is_held_back_then_counts_as_a_comment(sdir: Path) -> None:
    path = sdir / "inbox.md"
    with path.open("a") as writer:
        writer.write("do this\n<!-- a note still being")
        writer.flush()
        (first,) = take(sdir, {})
        assert first.text == "do this"
        writer.write(" typed -->\nand that\n")
    (second,) = take(sdir, {first.source: first.end})
    assert second.text == "and that"
    path.write_text("<!-- never closed\nhidden\n")
    third = take(sdir, {first.source: first.end, second.source: second.end})
    assert third == []
    for name in takings(sdir):
        age(sdir / name)
    assert take(sdir, {first.source: first.end, second.source: second.end}) == []


# --- iteratr say -----------------------------------------------------------------------------------------


def test_append_creates_the_inbox_with_its_header_and_separates_messages(tmp_path: Path) -> None:
    path = append(tmp_path, "first message\n\n")
    assert path == tmp_path / "inbox.md"
    assert path.read_text() == INBOX_HEADER + "\n" + SAY_MARK + "\nfirst message\n"
    with path.open("a") as f:
        f.write("typed without newline")
    append(tmp_path, "second\nwith two lines")
    assert path.read_text().endswith(
        "first message\ntyped without newline\n\n" + SAY_MARK + "\nsecond\nwith two lines\n"
    )
    # Each say is its own message; text typed by hand joins the message it follows.
    assert [t.text for t in take(tmp_path, {})] == ["first message\ntyped without newline", "second\nwith two lines"]


def test_append_rejects_empty_and_oversized_messages(sdir: Path) -> None:
    with pytest.raises(UsageError, match="empty message"):
        append(sdir, " \n\t")
    with pytest.raises(UsageError, match="empty message"):
        append(sdir, "<!-- just a comment -->")
    with pytest.raises(UsageError, match="limit is 65536"):
        append(sdir, "z" * (MAX_MESSAGE_BYTES + 1))
    assert (sdir / "inbox.md").read_text() == INBOX_HEADER


def test_append_into_a_missing_session_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no session directory"):
        append(tmp_path / "nope", "hi")


# --- concurrency with another process --------------------------------------------------------------------

WRITERS = {
    "python-open-append": (
        [sys.executable, "-c", "import sys\nfor i in range(1, {count} + 1):\n"
         "    with open(sys.argv[1], 'a') as f:\n        f.write(f'line-{i}\\n')", "{inbox}"]
    ),
    "sh-echo-append": ["sh", "-c", 'i=1; while [ $i -le {count} ]; do echo line-$i >> "$1"; i=$((i+1)); done', "sh",
                       "{inbox}"],
    "iteratr-append": (
        [sys.executable, "-c", "import sys\nfrom pathlib import Path\nfrom iteratr.run.inbox import append\n"
         "for i in range(1, {count} + 1):\n    append(Path(sys.argv[1]), f'line-{i}')", "{sdir}"]
    ),
}  # fmt: skip


@pytest.mark.parametrize(("writer", "count"), [*((w, 100) for w in sorted(WRITERS)), ("python-open-append", 2000)])
def test_rapid_appends_from_another_process_land_exactly_once_in_order(
    sdir: Path, tmp_path: Path, writer: str, count: int
) -> None:
    """The take loop runs while the writer writes; 2000 lines make it catch writers mid-take."""
    caller = Caller(sdir)
    argv = [
        a.replace("{inbox}", str(sdir / "inbox.md")).replace("{sdir}", str(sdir)).replace("{count}", str(count))
        for a in WRITERS[writer]
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with (tmp_path / "writer.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            while proc.poll() is None:
                caller.drain()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp_path / "writer.log").read_text()
    caller.drain()
    assert caller.lines() == [f"line-{i}" for i in range(1, count + 1)]
    assert take(sdir, caller.consumed) == []


# --- the real watcher ------------------------------------------------------------------------------------

DEADLINE = 10.0  # generous: a guard against hanging, not a speed check


async def wait_until(cond: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait, woken by each on_change call, until cond() holds; fail after DEADLINE."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not cond():
        remaining = end - loop.time()
        assert remaining > 0, "condition not reached before the deadline"
        changed.clear()
        if not cond():
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pytest.fail("the watcher did not call on_change before the deadline")


def test_watch_picks_up_each_save_style_and_stops(sdir: Path) -> None:
    caller = Caller(sdir)
    path = sdir / "inbox.md"

    async def scenario() -> None:
        stop = asyncio.Event()
        changed = asyncio.Event()
        calls = 0

        async def on_change() -> None:
            nonlocal calls
            calls += 1
            caller.drain()
            changed.set()

        task = asyncio.create_task(inbox.watch(sdir, on_change, stop))
        await wait_until(lambda: calls >= 1, changed)  # the first call says the watcher is live
        expected: list[str] = []
        for style, save in [("truncate", save_truncate), ("rename", save_rename_over), ("append", save_append_sh)]:
            for n in range(2):  # twice each: a rename-over must not leave the watcher on a dead inode
                message = f"{style} message {n}"
                save(path, message + "\n")
                expected.append(message)
                await wait_until(lambda: caller.texts() == expected, changed)
        with path.open("a") as late:  # a writer holding the file open across a take
            late.write("early\n")
            late.flush()
            await wait_until(lambda: caller.texts()[-1:] == ["early"], changed)
            late.write("late\n")
        await wait_until(lambda: caller.texts()[-2:] == ["early", "late"], changed)
        stop.set()
        await asyncio.wait_for(task, DEADLINE)

    asyncio.run(scenario())
    assert (sdir / "inbox.md").read_text() == INBOX_HEADER


def test_watch_takes_a_half_written_tail_after_it_settles(sdir: Path) -> None:
    caller = Caller(sdir)

    async def scenario() -> None:
        stop = asyncio.Event()
        changed = asyncio.Event()
        calls = 0

        def on_change() -> None:  # a plain function works too
            nonlocal calls
            calls += 1
            caller.drain()
            changed.set()

        task = asyncio.create_task(inbox.watch(sdir, on_change, stop))
        await wait_until(lambda: calls >= 1, changed)
        (sdir / "inbox.md").write_bytes(b"note: caf\xc3")  # the writer stops mid-character and never returns
        # The tail byte is held back while fresh; only the settle follow-up call can take it.
        await wait_until(lambda: "".join(caller.texts()) == "note: caf\ufffd", changed)
        assert caller.taken[-1].warning is not None
        stop.set()
        await asyncio.wait_for(task, DEADLINE)

    asyncio.run(scenario())
