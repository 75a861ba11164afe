"""``iteratr setup`` and the build wizard, answered through a real prompt_toolkit pipe input.

The questions run in-process against a pipe (as commitizen tests its ``init``); the agent asked for its
models is the real scripted ACP agent in a subprocess, and the build run with the request the wizard
returns is a real build, as the CLI runs it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iteratr import config
from iteratr.commands import build as build_cmd
from iteratr.commands import questions, setup, wizard
from iteratr.errors import EXIT_INTERRUPTED, ConfigError
from iteratr.output import Printer
from tests.conftest import FAST_ENV, THREE_TASK_SPEC, fake_agent, git, read_events, run_cli

DOWN = "\x1b[B"
ENTER = "\r"
CTRL_C = "\x03"
BACKSPACE = "\x7f"

Keys = Callable[[str], None]


@pytest.fixture
def keys() -> Iterator[Keys]:
    """Type into every question asked in the test: a pipe stands in for the terminal."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        yield pipe.send_text


@pytest.fixture
def lines() -> list[str]:
    return []


def run_setup(lines: list[str], *, project: bool = False, force: bool = False) -> int:
    stream = io.StringIO()
    try:
        return setup.run(project=project, force=force, out=Printer(stream), interactive=True)
    finally:
        lines.extend(stream.getvalue().splitlines())


def global_file() -> Path:
    return config.global_config_path()


@pytest.fixture
def agent_ab(monkeypatch: pytest.MonkeyPatch) -> str:
    agent = fake_agent("ok", models="a/x,b/y")
    monkeypatch.setenv("ITERATR_AGENT", agent)
    return agent


# -- setup -------------------------------------------------------------------------------------------------


def test_setup_global_picks_a_model_the_agent_offers(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str
) -> None:
    monkeypatch.chdir(repo)
    keys(DOWN + DOWN + ENTER + "n")  # past "(the agent's default)" and a/x: b/y; auto-commit: no
    assert run_setup(lines) == 0
    cfg = config.load_config(cwd=repo)
    assert (cfg.model, cfg.auto_commit) == ("b/y", False)
    assert cfg.source("model").startswith(f"global file {global_file()}:")
    assert not (repo / "iteratr.yml").exists()
    assert any("2 models offered by the agent (iteratr-scripted-agent" in line for line in lines), lines


def test_setup_project_updates_the_file_in_place_keeping_comments_and_order(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str
) -> None:
    monkeypatch.chdir(repo)
    original = (
        "# my project settings\niterations: 5  # five at a time\nmodel: a/x\n# the agent we use\nidle_timeout: 90s\n"
    )
    (repo / "iteratr.yml").write_text(original)
    keys(DOWN + ENTER + "y")  # the list starts on the configured a/x; one down is b/y
    assert run_setup(lines, project=True) == 0
    text = (repo / "iteratr.yml").read_text()
    assert text == original.replace("model: a/x", "model: b/y") + "auto_commit: true\n"
    assert not global_file().exists()
    assert any(line.startswith("updating") for line in lines)


def test_setup_keeps_the_configured_model_when_enter_is_pressed(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str
) -> None:
    monkeypatch.chdir(repo)
    (repo / "iteratr.yml").write_text("model: b/y\nauto_commit: false\n")
    keys(ENTER + ENTER)  # both defaults: the configured values
    assert run_setup(lines, project=True) == 0
    assert (repo / "iteratr.yml").read_text() == "model: b/y\nauto_commit: false\n"


def test_setup_force_starts_the_file_over(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str
) -> None:
    monkeypatch.chdir(repo)
    (repo / "iteratr.yml").write_text("# old comment\niterations: 5\nmodel: a/x\n")
    keys(ENTER + "y")
    assert run_setup(lines, project=True, force=True) == 0
    text = (repo / "iteratr.yml").read_text()
    assert "old comment" not in text and "iterations" not in text
    assert config.read_config_file(repo / "iteratr.yml").keys() == {"model", "auto_commit"}


def test_setup_can_choose_the_agents_default_model(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str
) -> None:
    monkeypatch.chdir(repo)
    keys(ENTER + "y")  # nothing configured: the list starts on "(the agent's default: a/x)"
    assert run_setup(lines, project=True) == 0
    values = config.read_config_file(repo / "iteratr.yml")
    assert values["model"][0] == "" and values["auto_commit"][0] is True


def test_setup_falls_back_to_free_text_when_the_agent_cannot_be_asked(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str]
) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.setenv("ITERATR_AGENT", str(repo / "no-such-agent") + " acp")
    keys("prov/typed-model" + ENTER + "n")
    assert run_setup(lines, project=True) == 0
    assert config.read_config_file(repo / "iteratr.yml")["model"][0] == "prov/typed-model"
    assert any("could not ask the agent: agent command not found" in line for line in lines), lines
    assert any("type a model id" in line for line in lines), lines


def test_setup_free_text_when_the_agent_offers_no_model_choice(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str]
) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.setenv("ITERATR_AGENT", fake_agent("ok"))  # speaks ACP, lists no models
    keys("x/y" + ENTER + "y")
    assert run_setup(lines, project=True) == 0
    assert config.read_config_file(repo / "iteratr.yml")["model"][0] == "x/y"
    assert any("offers no model choice" in line for line in lines), lines


def test_setup_falls_back_to_opencode_models(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str]
) -> None:
    """An opencode whose ACP side fails (say, no credentials yet) can still list its models."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opencode = bin_dir / "opencode"
    opencode.write_text(
        '#!/bin/sh\nif [ "$1" = models ]; then printf "prov/one\\nprov/two\\n"; exit 0; fi\n'
        'echo "no credentials" >&2; exit 1\n'
    )
    opencode.chmod(0o755)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("ITERATR_AGENT", f"{opencode} acp")
    keys(DOWN + DOWN + ENTER + "y")
    assert run_setup(lines, project=True) == 0
    assert config.read_config_file(repo / "iteratr.yml")["model"][0] == "prov/two"
    assert any(f"2 models offered by `{opencode} models`" in line for line in lines), lines
    assert any("could not ask the agent" in line and "exited with status 1" in line for line in lines), lines


def test_setup_long_model_list_is_searched_by_typing(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str]
) -> None:
    offered = [f"prov/model-{n:02}" for n in range(20)]
    monkeypatch.setenv("ITERATR_AGENT", fake_agent("ok", models=",".join(offered)))
    monkeypatch.chdir(repo)
    # "m17" is no model and no substring, but fuzzy-matches exactly one: prov/model-17
    keys("m17" + ENTER + "y")
    assert run_setup(lines, project=True) == 0
    assert config.read_config_file(repo / "iteratr.yml")["model"][0] == "prov/model-17"


@pytest.mark.parametrize("answers", [CTRL_C, DOWN + ENTER + CTRL_C])
def test_setup_ctrl_c_exits_130_and_writes_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str, answers: str
) -> None:
    monkeypatch.chdir(repo)
    (repo / "iteratr.yml").write_text("model: a/x  # keep me\n")
    keys(answers)
    assert run_setup(lines, project=True) == EXIT_INTERRUPTED
    assert (repo / "iteratr.yml").read_text() == "model: a/x  # keep me\n"
    assert not global_file().exists()


def test_setup_refuses_a_broken_file_unless_forced(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str
) -> None:
    monkeypatch.chdir(repo)
    (repo / "iteratr.yml").write_text("iterations: lots\n")
    with pytest.raises(ConfigError) as caught:
        run_setup(lines, project=True)
    assert "iteratr.yml:1: iterations" in str(caught.value)
    assert "iteratr setup --project --force" in str(caught.value)
    keys(DOWN + ENTER + "y")
    assert run_setup(lines, project=True, force=True) == 0
    assert config.load_config(cwd=repo).model == "a/x"


def test_setup_force_starts_over_a_broken_global_file(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keys: Keys, lines: list[str], agent_ab: str
) -> None:
    monkeypatch.chdir(repo)
    global_file().parent.mkdir(parents=True)
    global_file().write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        run_setup(lines)
    keys(DOWN + DOWN + ENTER + "y")  # the models still come from ITERATR_AGENT
    assert run_setup(lines, force=True) == 0
    assert config.load_config(cwd=repo).model == "b/y"
    assert any("the questions start from the defaults" in line for line in lines), lines


def test_setup_without_a_terminal_refuses_and_names_the_alternatives(repo: Path) -> None:
    result = run_cli("setup", "--project", cwd=repo, expect=2)
    assert "needs a terminal" in result.stderr
    for alternative in ("ITERATR_MODEL", "--model", "iteratr.yml"):
        assert alternative in result.stderr
    assert not (repo / "iteratr.yml").exists()


# -- the build wizard ----------------------------------------------------------------------------------


def build_request(*args: str) -> build_cmd.BuildRequest:
    """The request exactly as `iteratr build ARGS` makes it."""
    from iteratr import cli

    return build_cmd.BuildRequest(**cli.build.make_context("build", list(args)).params)


def wizard_then_build(request: build_cmd.BuildRequest) -> int:
    """What `iteratr build` does on a terminal without a spec: ask the wizard, then build its request."""
    assert build_cmd.wants_wizard(request, Path.cwd()) is False  # no terminal under pytest: asked directly
    asked = wizard.ask_build(request)
    return EXIT_INTERRUPTED if asked is None else build_cmd.run(asked)


@pytest.fixture
def wizard_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with specs but no specs/SPEC.md, as the current directory, set up for fast builds."""
    (repo / "specs").mkdir()
    (repo / "specs" / "feature.md").write_text(THREE_TASK_SPEC)
    (repo / "specs" / "other.md").write_text(THREE_TASK_SPEC)
    git(repo, "add", "specs")
    git(repo, "commit", "-q", "-m", "specs")
    monkeypatch.chdir(repo)
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    return repo


def editor_appending(text: str) -> str:
    """An $EDITOR command line that appends ``text`` to the file it is given."""
    return shlex.join([sys.executable, "-c", f"import sys; open(sys.argv[1], 'a').write({text!r})"])


def test_find_specs_lists_specs_dir_then_here(wizard_repo: Path) -> None:
    (wizard_repo / "specs" / "sub").mkdir()
    (wizard_repo / "specs" / "sub" / "deep.md").write_text("x")
    (wizard_repo / "specs" / ".hidden.md").write_text("x")
    (wizard_repo / "notes.txt").write_text("x")
    assert wizard.find_specs(wizard_repo) == ["specs/feature.md", "specs/other.md", "specs/sub/deep.md", "README.md"]


def test_build_wizard_runs_the_build_it_describes(
    wizard_repo: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = fake_agent("follow", models="a/x,b/y")
    # spec: specs/feature.md; model: b/y; template: built-in; name: default; iterations: 0 -> 10
    keys(ENTER + DOWN + DOWN + ENTER + ENTER + ENTER + BACKSPACE + "10" + ENTER)
    code = wizard_then_build(build_request("--agent", agent))
    out = capsys.readouterr().out
    assert code == 0, out
    expected = ["iteratr", "build", "--spec", "specs/feature.md", "--model", "b/y", "--agent", agent]
    assert shlex.join([*expected, "--iterations", "10"]) in out
    assert "model: b/y" in out
    events = read_events(wizard_repo, "feature")
    assert [e for e in events if e["type"] == "session.completed"], [e["type"] for e in events]
    assert git(wizard_repo, "rev-parse", "--abbrev-ref", "HEAD") == "iteratr/feature"


def test_build_wizard_edits_a_template_until_it_passes_the_check(
    wizard_repo: Path,
    tmp_path: Path,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first edit leaves an unknown variable: the wizard shows the error and offers to edit again."""
    count = tmp_path / "edits"
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import pathlib, sys\n"
        f"count = pathlib.Path({str(count)!r})\n"
        "n = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        "path = pathlib.Path(sys.argv[1])\n"
        "extra = '{{ no_such_thing }}' if n == 1 else 'CUSTOM MARKER for {{ session }}'\n"
        "path.write_text(path.read_text().replace('{{ no_such_thing }}', '') + extra + '\\n')\n"
    )
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(editor))}")
    monkeypatch.delenv("VISUAL", raising=False)
    prompts = tmp_path / "prompts.log"
    monkeypatch.setenv("FAKE_AGENT_PROMPT_LOG", str(prompts))
    # spec: other.md; model: free text, empty; template: edit (second choice); edit again; name; iterations
    keys(DOWN + ENTER + ENTER + DOWN + ENTER + ENTER + ENTER + "2" + ENTER)
    code = wizard_then_build(build_request("--agent", fake_agent("follow")))
    out = capsys.readouterr().out
    assert code == 3, out  # planning and one task: work left
    assert "unknown template variable 'no_such_thing'" in out
    saved = (wizard_repo / ".iteratr.template").read_text()
    assert "CUSTOM MARKER for {{ session }}" in saved and "no_such_thing" not in saved
    assert "--template .iteratr.template" in out
    assert count.read_text() == "2"
    # Planning uses the built-in planning template; the edited one drives the task iteration after it.
    planning, task_turn = prompts.read_text().split("\n=====\n")[:2]
    assert "CUSTOM MARKER" not in planning
    assert "CUSTOM MARKER for other" in task_turn


def test_build_wizard_can_give_up_on_a_bad_template_for_the_builtin_one(
    wizard_repo: Path,
    tmp_path: Path,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDITOR", editor_appending("{{"))
    monkeypatch.delenv("VISUAL", raising=False)
    # spec; model (empty); template: edit; -> "use the built-in template"; name; iterations 1
    keys(ENTER + ENTER + DOWN + ENTER + DOWN + ENTER + ENTER + "1" + ENTER)
    code = wizard_then_build(build_request("--agent", fake_agent("follow")))
    out = capsys.readouterr().out
    assert code == 3, out
    assert "template syntax error" in out
    assert not (wizard_repo / ".iteratr.template").exists()
    assert "--template" not in out.split("the same build without the wizard:")[1].splitlines()[1]


def test_build_wizard_ctrl_c_exits_130_and_writes_nothing(
    wizard_repo: Path, tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even after the template was edited: the copy is only saved once every question is answered."""
    monkeypatch.setenv("EDITOR", editor_appending("x"))
    before = git(wizard_repo, "status", "--porcelain", "--ignored")
    keys(ENTER + ENTER + DOWN + ENTER + CTRL_C)
    assert wizard_then_build(build_request("--agent", fake_agent("follow"))) == EXIT_INTERRUPTED
    assert git(wizard_repo, "status", "--porcelain", "--ignored") == before
    assert git(wizard_repo, "branch", "--list", "iteratr/*") == ""


def test_build_wizard_skips_the_questions_flags_answer(
    wizard_repo: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only the spec and the template are asked: model, name and iterations come from flags.
    keys(DOWN + ENTER + ENTER)
    request = build_request("--agent", fake_agent("follow", models="a/x,b/y"), "-m", "b/y", "-n", "mine", "-i", "1")
    assert wizard_then_build(request) == 3
    out = capsys.readouterr().out
    assert "asking the agent" not in out
    assert read_events(wizard_repo, "mine")


def test_command_line_renders_every_kind_of_flag() -> None:
    request = build_request(
        "--no-auto-commit", "--push", "--worktree", "-e", "be brief", "--data-dir", "d", "-i", "3", "--headless"
    )
    request = dataclasses.replace(request, spec="specs/a b.md", template="t.j2")
    # In the order of `iteratr build --help`: the build's own flags, then the settings'.
    assert request.command_line() == [
        "iteratr",
        "build",
        "--spec",
        "specs/a b.md",
        "--extra-instructions",
        "be brief",
        "--worktree",
        "--no-auto-commit",
        "--data-dir",
        "d",
        "--iterations",
        "3",
        "--headless",
        "--template",
        "t.j2",
        "--push=origin",
    ]
    assert build_request(*request.command_line()[2:]) == request  # and it parses back to the same request


def test_match_models_exact_then_substring_then_fuzzy() -> None:
    offered = ["anthropic/claude-sonnet-4", "anthropic/claude-opus-4", "openai/gpt-5"]
    assert questions.match_models("openai/gpt-5", offered) == ["openai/gpt-5"]
    assert questions.match_models("claude", offered) == offered[:2]
    assert questions.match_models("cso4", offered) == ["anthropic/claude-sonnet-4"]
    assert questions.match_models("zzz", offered) == []


def test_build_without_a_terminal_or_with_headless_never_starts_the_wizard(repo: Path) -> None:
    (repo / "specs").mkdir()
    (repo / "specs" / "feature.md").write_text(THREE_TASK_SPEC)
    result = run_cli("build", "--agent", fake_agent("follow"), cwd=repo, expect=2)
    assert "the wizard needs a terminal" in result.stderr and "--spec" in result.stderr
    result = run_cli("build", "--headless", cwd=repo, expect=2)
    assert "the wizard is off with --headless" in result.stderr
    assert not (repo / ".iteratr").exists()
    assert os.listdir(repo / "specs") == ["feature.md"]
