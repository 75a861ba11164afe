"""Issue 12's randomized kill test, bounded for the suite: the trial logic is bench/kill_trials.py's, whose long
mode (``python bench/kill_trials.py --minutes 10``) runs the same trials for longer.

A session built with the real CLI and the scripted ACP agent is SIGKILLed at random moments and resumed until it
completes; after every kill and resume no committed event is lost, iteration numbers and trailers stay contiguous,
every iteratr commit stays reachable from ``iteratr/S``, no ``say`` message is lost or delivered twice, and the
work tree is clean at the end. ``ITERATR_KILL_SEED`` replays a seed a failure printed.
"""

from __future__ import annotations

import os
import random

from bench import kill_trials

SECONDS = 30.0


def test_random_kill_9_and_resume_keep_the_history_whole() -> None:
    seed = int(os.environ.get("ITERATR_KILL_SEED") or random.randrange(2**32))
    summary = kill_trials.run_trials(seed=seed, seconds=SECONDS)
    detail = "\n".join(summary.violations)
    assert not summary.violations, f"seed {seed} (ITERATR_KILL_SEED={seed} replays it): {summary.text()}\n{detail}"
    assert summary.trials >= 1 and summary.completed == summary.trials, f"seed {seed}: {summary.text()}"
    assert summary.kills >= 1, f"seed {seed}: {summary.text()}"
