"""One Ctrl+C forwarded twice by a wrapper (``timeout`` sends SIGINT to the group) counts once."""

from __future__ import annotations

import io
import os
import signal

import pytest

from iteratr.output import Printer
from iteratr.run import signals
from iteratr.run.signals import Interrupts


def test_a_duplicate_signal_within_the_window_counts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    interrupts = Interrupts(Printer(io.StringIO()), lambda: None)
    interrupts.interrupt(signal.SIGINT)
    interrupts.interrupt(signal.SIGINT)  # the same Ctrl+C, forwarded by a wrapper
    assert interrupts.is_set() and exits == []
    interrupts._first -= signals.DUPLICATE_WINDOW + 0.1  # a real second Ctrl+C, later
    interrupts.interrupt(signal.SIGINT)
    assert exits == [130]
