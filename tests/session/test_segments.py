"""The segmented layout's core (not wired into the store yet): names, listing, close, a close cut short, and the
segments read as one file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from iteratr.session import segments
from iteratr.session.replay import crc_of


def test_segment_names_nest_ten_to_a_directory_in_number_order() -> None:
    assert segments.segment_rel(0) == "events/0/0/0/0/0000000.jsonl"
    assert segments.segment_rel(12345) == "events/1/2/3/4/0012345.jsonl"
    rels = [segments.segment_rel(n) for n in range(0, 30000, 7)]
    assert len({r.rsplit("/", 1)[0] for r in rels[:2]}) <= 2
    with pytest.raises(ValueError):
        segments.segment_rel(-1)


def test_close_moves_the_open_segment_and_the_log_reads_the_same(tmp_path: Path) -> None:
    rng = random.Random(4)
    session = tmp_path / "S"
    session.mkdir()
    log = session / segments.OPEN_FILE
    log.write_bytes(b"")
    everything = b""
    assert segments.close(session) is None  # nothing to close
    for n in range(130):
        lines = b"".join(f'{{"n": {n}, "i": {i}}}\n'.encode() for i in range(rng.randint(1, 4)))
        with open(log, "ab") as f:
            f.write(lines)
        everything += lines
        if rng.random() < 0.8:
            assert segments.close(session) == segments.last(session)
            assert log.stat().st_size == 0
    numbers = segments.closed(session)
    assert numbers == list(range(len(numbers))) and segments.last(session) == numbers[-1]
    with segments.LogView(session) as view:
        assert view.read() == everything
        view.seek(17)
        assert view.read(1000) == everything[17:1017]
        assert view.tell() == 1017
        assert crc_of(view, len(everything)) == crc_of(_BytesFile(everything), len(everything))
        assert view.seek(0, os.SEEK_END) == len(everything)


def test_a_close_cut_short_by_a_crash_is_read_once_and_finished(tmp_path: Path) -> None:
    session = tmp_path / "S"
    session.mkdir()
    log = session / segments.OPEN_FILE
    log.write_bytes(b'{"a": 1}\n')
    segments.close(session)
    log.write_bytes(b'{"b": 2}\n')
    target = session / segments.segment_rel(1)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(log, target)  # the crash: linked, not yet swapped
    assert segments.open_is_closed(session)
    with segments.LogView(session) as view:
        assert view.read() == b'{"a": 1}\n{"b": 2}\n'  # not twice
    assert segments.finish_close(session)
    assert log.read_bytes() == b"" and target.read_bytes() == b'{"b": 2}\n'
    assert not segments.finish_close(session)


class _BytesFile:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def seek(self, pos: int) -> int:
        self.pos = pos
        return pos

    def read(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk
