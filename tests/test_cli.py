"""The command layer in-process: click parses into typed requests, each command returns its exit status, and
everything about a setting comes from the one table in ``iteratr.config``."""

from __future__ import annotations

import ast
import dataclasses
import json
import typing
from pathlib import Path

import pytest

from iteratr import __version__, cli, config
from iteratr.commands import build as build_cmd
from iteratr.commands import questions, wizard
from iteratr.errors import EXIT_INTERRUPTED, EXIT_USAGE
from iteratr.run import prompt
from iteratr.run.settings import Settings
from tests.conftest import git

PACKAGE = Path(__file__).resolve().parent.parent / "iteratr"


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[build_cmd.BuildRequest]:
    """The requests `iteratr build` hands to commands.build.run, which here runs nothing and returns 0."""
    seen: list[build_cmd.BuildRequest] = []

    def fake_run(request: build_cmd.BuildRequest, *, ask: object = None) -> int:
        seen.append(request)
        return 0

    monkeypatch.setattr(build_cmd, "run", fake_run)
    return seen


# --- the settings table ---------------------------------------------------------------------------------


def test_build_request_has_one_field_per_build_option_in_its_order() -> None:
    assert [f.name for f in dataclasses.fields(build_cmd.BuildRequest)] == list(config.BUILD_OPTIONS)


def test_every_build_option_of_a_setting_is_a_config_key_and_the_rest_are_not() -> None:
    for name in config.BUILD_OPTIONS:
        assert (name in config.KEYS) == (name not in config.BUILD_ONLY_OPTIONS), name
    assert all(
        config.KEYS[name].option is option for name, option in config.BUILD_OPTIONS.items() if name in config.KEYS
    )


def test_config_has_a_typed_field_per_key_of_the_keys_type() -> None:
    hints = typing.get_type_hints(config.Config)
    assert {name: hints[name] for name in config.KEYS} == {name: key.type for name, key in config.KEYS.items()}
    cfg = config.defaults()
    for name, key in config.KEYS.items():
        assert isinstance(getattr(cfg, name), key.type), name


def test_settings_take_every_setting_from_the_config(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "ITERATR_AGENT": "my-agent --acp",
        "ITERATR_MODEL": "p/m",
        "ITERATR_ITERATIONS": "4",
        "ITERATR_ITERATION_TIMEOUT": "1m",
        "ITERATR_IDLE_TIMEOUT": "30",
        "ITERATR_MAX_FAILURES": "2",
        "ITERATR_RETRY_DELAY": "0",
        "ITERATR_AUTO_COMMIT": "no",
        "ITERATR_PUSH": "up",
    }
    cfg = config.load_config(cwd=tmp_path, env=env)
    settings = Settings.resolve(
        cfg,
        session="s",
        work_tree=tmp_path,
        data_dir=tmp_path / ".iteratr",
        spec_path=tmp_path / "spec.md",
        extra="be brief",
        templates={},
        hooks=None,
        binary=["python3", "-m", "iteratr"],
    )
    assert (settings.agent_argv, settings.model, settings.iterations) == (["my-agent", "--acp"], "p/m", 4)
    assert (settings.iteration_timeout, settings.idle_timeout, settings.retry_delay) == (60.0, 30.0, 0.0)
    assert (settings.max_failures, settings.auto_commit, settings.push) == (2, False, "up")
    assert (settings.extra, settings.binary, settings.branch) == ("be brief", "python3 -m iteratr", "iteratr/s")
    assert Settings.resolve(config.defaults(), **_runtime(tmp_path)).model is None  # "" = the agent's own


def _runtime(tmp_path: Path) -> dict[str, typing.Any]:
    return {
        "session": "s",
        "work_tree": tmp_path,
        "data_dir": tmp_path,
        "spec_path": tmp_path / "spec.md",
        "extra": "",
        "templates": {},
        "hooks": None,
        "binary": ["iteratr"],
    }


# --- `iteratr build`: parse into a request, run it --------------------------------------------------------


def test_build_parses_flags_into_a_typed_request(requests: list[build_cmd.BuildRequest]) -> None:
    args = ["build", "-s", "spec.md", "-i", "3", "--no-auto-commit", "--push", "-t", "~/t.j2", "--reset"]
    assert cli.run(args) == 0
    assert requests == [
        build_cmd.BuildRequest(
            spec="spec.md",
            iterations=3,
            auto_commit=False,
            push="origin",
            template=str(Path.home() / "t.j2"),
            reset=True,
        )
    ]


def test_flags_left_out_are_none_so_the_config_decides(requests: list[build_cmd.BuildRequest]) -> None:
    assert cli.run(["build", "--spec", "x.md"]) == 0
    assert requests == [build_cmd.BuildRequest(spec="x.md")]
    assert requests[0].config_flags() == dict.fromkeys(requests[0].config_flags())  # every one None


def test_a_bad_flag_value_is_refused_by_the_keys_validator(
    requests: list[build_cmd.BuildRequest], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(["build", "-i", "lots"]) == EXIT_USAGE
    assert capsys.readouterr().err == "iteratr: error: --iterations: 'lots' is not a whole number >= 0\n"
    assert cli.run(["build", "--push", "-x"]) == EXIT_USAGE  # an option-looking remote
    assert requests == []


def test_build_asks_the_wizard_then_runs_its_request(
    requests: list[build_cmd.BuildRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[build_cmd.BuildRequest] = []

    def ask_build(request: build_cmd.BuildRequest) -> build_cmd.BuildRequest:
        asked.append(request)
        return dataclasses.replace(request, spec="specs/chosen.md")

    monkeypatch.setattr(build_cmd, "wants_wizard", lambda request, cwd: True)
    monkeypatch.setattr(wizard, "ask_build", ask_build)
    assert cli.run(["build", "-m", "a/b"]) == 0
    assert asked == [build_cmd.BuildRequest(model="a/b")]
    assert requests == [build_cmd.BuildRequest(model="a/b", spec="specs/chosen.md")]


def test_a_cancelled_wizard_runs_no_build(
    requests: list[build_cmd.BuildRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_cmd, "wants_wizard", lambda request, cwd: True)
    monkeypatch.setattr(wizard, "ask_build", lambda request: None)
    assert cli.run(["build"]) == EXIT_INTERRUPTED
    assert requests == []


def test_the_wizard_is_wanted_only_without_a_spec_at_a_terminal_and_not_headless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_cmd, "is_interactive", lambda: True)
    assert build_cmd.wants_wizard(build_cmd.BuildRequest(), tmp_path)
    assert not build_cmd.wants_wizard(build_cmd.BuildRequest(headless=True), tmp_path)
    assert not build_cmd.wants_wizard(build_cmd.BuildRequest(spec="x.md"), tmp_path)
    (tmp_path / build_cmd.DEFAULT_SPEC).parent.mkdir()
    (tmp_path / build_cmd.DEFAULT_SPEC).write_text("- [ ] a task\n")
    assert not build_cmd.wants_wizard(build_cmd.BuildRequest(), tmp_path)
    monkeypatch.setattr(build_cmd, "is_interactive", lambda: False)
    assert not build_cmd.wants_wizard(build_cmd.BuildRequest(), tmp_path / "elsewhere")


def _imports(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_build_never_imports_the_wizard_and_setup_is_not_in_it() -> None:
    assert not any("wizard" in name or "setup" in name for name in _imports(PACKAGE / "commands" / "build.py"))
    assert not hasattr(wizard, "setup")


# --- the other commands of this layer -----------------------------------------------------------------------


def test_config_from_a_subdirectory_reads_the_projects_file(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "iteratr.yml").write_text("model: some/model\n")
    (repo / "src").mkdir()
    monkeypatch.chdir(repo / "src")
    assert cli.run(["config"]) == 0
    out = capsys.readouterr().out
    model = next(line for line in out.splitlines() if line.startswith("model "))
    assert model.split() == ["model", "some/model", "project", "file", f"{repo / 'iteratr.yml'}:1"]
    assert cli.run(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["value"] == "some/model"


def test_the_project_file_is_at_the_top_of_the_work_tree(repo: Path) -> None:
    (repo / "src" / "deep").mkdir(parents=True)
    assert config.project_config_path(repo / "src" / "deep") == repo / "iteratr.yml"
    git(repo, "worktree", "add", "-q", str(repo.parent / "linked"))
    assert config.project_config_path(repo.parent / "linked") == repo.parent / "linked" / "iteratr.yml"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["version"]) == 0
    assert capsys.readouterr().out.startswith(f"iteratr {__version__} (Python 3.")


def test_gen_template_writes_the_builtin_template_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.run(["gen-template", "-o", "t.j2"]) == 0
    assert (tmp_path / "t.j2").read_text() == prompt.builtin_source("default")
    assert "iteratr build --template t.j2" in capsys.readouterr().out
    assert cli.run(["gen-template", "-o", "t.j2"]) == EXIT_USAGE
    assert "t.j2 exists: pass --force" in capsys.readouterr().err
    assert cli.run(["gen-template", "-o", "t.j2", "--force"]) == 0


def test_setup_without_a_terminal_refuses_in_process(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    assert cli.run(["setup", "--project"]) == EXIT_USAGE
    assert not (repo / "iteratr.yml").exists()


def test_the_wizard_never_starts_an_untrusted_repositorys_agent(
    requests: list[build_cmd.BuildRequest], monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    # The wizard lists models by starting the agent: a cloned iteratr.yml's `agent:` must be trusted first.
    monkeypatch.delenv("ITERATR_TRUST", raising=False)
    (repo / "iteratr.yml").write_text("agent: sh -c 'touch PWNED'\n")
    monkeypatch.chdir(repo)
    monkeypatch.setattr(build_cmd, "wants_wizard", lambda request, cwd: True)
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    monkeypatch.setattr(questions, "confirm", no)
    monkeypatch.setattr(wizard, "ask_build", lambda request: pytest.fail("the wizard ran before the trust gate"))
    assert cli.run(["build"]) == EXIT_USAGE
    assert asked and "iteratr.yml" in " ".join(asked)
    assert requests == [] and not (repo / "PWNED").exists()


def test_setup_never_starts_an_untrusted_repositorys_agent(monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    from iteratr.commands import setup
    from iteratr.trust import UntrustedError

    monkeypatch.delenv("ITERATR_TRUST", raising=False)
    (repo / "iteratr.yml").write_text("agent: sh -c 'touch PWNED'\n")
    monkeypatch.chdir(repo)
    monkeypatch.setattr(questions, "confirm", lambda question: False)
    monkeypatch.setattr(questions, "ask_model", lambda *a: pytest.fail("the agent was asked before the trust gate"))
    with pytest.raises(UntrustedError):
        setup.run(project=False, force=False, interactive=True)
    assert not (repo / "PWNED").exists()
