"""``iteratr doctor`` run as a user runs it, against real agents: one that works, one that hangs, none at all."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tests.conftest import FAST_ENV, fake_agent, run_cli

HANGS = shlex.join([sys.executable, "-c", "import time; time.sleep(100)"])  # never answers initialize


def lines_with(text: str, output: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_doctor_with_a_working_agent_passes_and_names_it(repo: Path) -> None:
    env = {"ITERATR_AGENT": fake_agent("ok", models="a/x,b/y"), "ITERATR_MODEL": "b/y"}
    result = run_cli("doctor", cwd=repo, env=env, expect=0)
    out = result.stdout
    assert lines_with("agent speaks ACP", out)[0].startswith("ok    agent speaks ACP: iteratr-scripted-agent 0.1.0")
    assert "2 model(s) offered, default a/x" in out
    assert lines_with("model:", out)[0].startswith("ok    model: b/y (env ITERATR_MODEL) is offered")
    assert lines_with("agent command", out)[0].startswith(f"ok    agent command: {sys.executable}")
    for check in ("python", "git", "git repository", "config", "hooks", "session state"):
        assert out.count(f"ok    {check}:") == 1, check
    assert "fail" not in out
    assert out.rstrip().endswith("doctor: every required check passed")


def test_doctor_times_out_on_an_agent_that_never_answers(repo: Path) -> None:
    result = run_cli("doctor", cwd=repo, env={"ITERATR_AGENT": HANGS, "ITERATR_PROBE_TIMEOUT": "1"}, expect=1)
    line = lines_with("agent speaks ACP", result.stdout)[0]
    assert line.startswith("fail  agent speaks ACP:") and "did not answer within 1 s" in line
    assert "fix: run `" in result.stdout and "ITERATR_PROBE_TIMEOUT" in result.stdout
    assert lines_with("model:", result.stdout)[0].startswith("warn  model: none configured")
    assert "1 check(s) failed" in result.stdout


def test_doctor_with_a_missing_agent_binary_fails_with_a_fix(repo: Path) -> None:
    result = run_cli("doctor", cwd=repo, env={"ITERATR_AGENT": "no-such-agent-binary acp"}, expect=1)
    out = result.stdout
    assert "fail  agent command: no-such-agent-binary not found" in out
    assert "fix: install opencode" in out and "ITERATR_AGENT" in out
    assert "skip  agent speaks ACP: not tried" in out


def test_doctor_fails_a_model_the_agent_does_not_offer(repo: Path) -> None:
    (repo / "iteratr.yml").write_text("model: b/yy\n")
    env = {"ITERATR_AGENT": fake_agent("ok", models="a/x,b/y")}
    result = run_cli("doctor", cwd=repo, env=env, expect=1)
    line = lines_with("model:", result.stdout)[0]
    assert line.startswith("fail  model: b/yy (project file iteratr.yml:1) is not offered by the agent")
    assert "did you mean b/y?" in line


def test_doctor_reports_a_broken_config_and_still_runs_the_other_checks(repo: Path) -> None:
    (repo / "iteratr.yml").write_text("model: a/x\niterations: lots\n")
    env = {"ITERATR_AGENT": fake_agent("ok", models="a/x,b/y")}
    result = run_cli("doctor", cwd=repo, env=env, expect=1)
    assert "fail  config: iteratr.yml:2: iterations: 'lots' is not a whole number >= 0" in result.stdout
    assert "ok    agent speaks ACP: iteratr-scripted-agent" in result.stdout  # ITERATR_AGENT still applies


def test_doctor_reports_a_broken_hooks_file(repo: Path) -> None:
    (repo / ".iteratr.hooks.yml").write_text("version: 2\n")
    result = run_cli("doctor", cwd=repo, env={"ITERATR_AGENT": fake_agent("ok")}, expect=1)
    line = lines_with("hooks:", result.stdout)[0]
    assert line.startswith("fail  hooks:") and ".iteratr.hooks.yml:1: unsupported version 2" in line


def test_doctor_outside_a_repository_warns_but_passes(tmp_path: Path) -> None:
    result = run_cli("doctor", cwd=tmp_path, env={"ITERATR_AGENT": fake_agent("ok")}, expect=0)
    assert f"warn  git repository: {tmp_path} is not inside a git repository" in result.stdout
    assert "fix: iteratr build needs one" in result.stdout


def test_doctor_reads_the_current_sessions_state_and_fails_a_corrupt_log(spec_repo: Path) -> None:
    agent = fake_agent("follow")
    run_cli("build", "--headless", "--agent", agent, "-i", "1", cwd=spec_repo, env=FAST_ENV, expect=3)
    env = {"ITERATR_AGENT": agent}
    result = run_cli("doctor", cwd=spec_repo, env=env, expect=0)  # on branch iteratr/SPEC after the build
    line = lines_with("session state", result.stdout)[0]
    # -i 1 runs the planning iteration and one task (planning does not count against -i).
    assert line.startswith("ok    session state: SPEC: readable (1/3 tasks done, 2 iteration(s))"), line
    events = spec_repo / ".iteratr" / "SPEC" / "events.jsonl"
    good_lines = len(events.read_text().splitlines())
    with events.open("a") as f:
        f.write("this is not json\n")
    result = run_cli("doctor", cwd=spec_repo, env=env, expect=1)
    line = lines_with("session state", result.stdout)[0]
    assert line.startswith("fail  session state: SPEC:") and f"events.jsonl:{good_lines + 1}:" in line, line
