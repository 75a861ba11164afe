"""Usage totals from the agent's own record: opencode export, as recorded from opencode 1.18.33."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from iteratr.agent import usage

RECORDED = Path(__file__).parent / "data" / "opencode-1.18.33-export.json"


def test_export_totals_sum_every_model_call_of_the_turn() -> None:
    # Recorded: two model calls of 100 in + 10 out each; the ACP response's usage said 110 (the last call).
    got = usage.from_opencode_export(RECORDED.read_text())
    assert got is not None
    assert (got.input_tokens, got.output_tokens, got.total_tokens) == (200, 20, 220)
    assert got.cost == 0.0009 and got.currency == "USD"
    assert got.source == "agent-record"


def test_export_text_with_a_leading_line_and_garbage_is_handled() -> None:
    assert usage.from_opencode_export("Exporting session: x\n" + RECORDED.read_text()) is not None
    assert usage.from_opencode_export("not json") is None
    assert usage.from_opencode_export(json.dumps({"info": {"tokens": "many"}})) is None
    assert usage.from_opencode_export("[]") is None


def test_opencode_turn_usage_runs_the_agents_export_command(tmp_path: Path) -> None:
    fake = tmp_path / "opencode"
    fake.write_text(f'#!/bin/sh\n[ "$1" = export ] && [ "$2" = ses_1 ] && cat {RECORDED}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    got = usage.opencode_turn_usage([str(fake), "acp"], "ses_1", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert got is not None and got.total_tokens == 220
    failing = usage.opencode_turn_usage([str(fake), "acp"], "other", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert failing is None


def test_is_opencode() -> None:
    assert usage.is_opencode(["/x/opencode", "acp"])
    assert not usage.is_opencode(["python", "-m", "agent"])
