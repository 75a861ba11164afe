"""Layered configuration: precedence of every layer, validation messages, and in-place file updates."""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from iteratr import config as config_mod
from iteratr.commands.config import render_text
from iteratr.config import (
    KEYS,
    Config,
    global_config_path,
    load_config,
    project_config_path,
    read_config_file,
    write_config_file,
)
from iteratr.errors import EXIT_USAGE, ConfigError, UsageError

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A project directory, an env with its own XDG_CONFIG_HOME, and where the global file goes."""
    project = tmp_path / "project"
    project.mkdir()
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    return project, env, tmp_path / "xdg" / "iteratr" / "iteratr.yml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config_error(project: Path, env: dict[str, str], text: str) -> ConfigError:
    write(project / "iteratr.yml", text)
    with pytest.raises(ConfigError) as info:
        load_config(cwd=project, env=env)
    return info.value


# --- precedence --------------------------------------------------------------------------------------------


def test_defaults_when_nothing_is_set(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    cfg = load_config(cwd=project, env=env)
    assert set(cfg.values) == set(KEYS)
    for name, key in KEYS.items():
        assert cfg[name] == key.default
        assert cfg.values[name].source == "default"
    assert cfg.model == ""
    assert cfg.agent_argv == ["opencode", "acp"]
    assert cfg.auto_commit is True
    assert cfg.iterations == 0
    assert cfg.max_failures == 3
    assert cfg.iteration_timeout == 1800.0
    assert cfg.idle_timeout == 600.0
    assert cfg.retry_delay == 5.0
    assert cfg.push == ""


def test_each_layer_beats_the_one_below(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, global_file = layout
    write(global_file, "iterations: 1\n")
    write(project / "iteratr.yml", "# project\niterations: 2\n")
    env = {**env, "ITERATR_ITERATIONS": "3"}
    flags: dict[str, object] = {"iterations": 4}

    cfg = load_config(cwd=project, env=env, flags=flags)
    assert (cfg.iterations, cfg.values["iterations"].source) == (4, "flag --iterations")

    cfg = load_config(cwd=project, env=env, flags={"iterations": None})
    assert (cfg.iterations, cfg.values["iterations"].source) == (3, "env ITERATR_ITERATIONS")

    del env["ITERATR_ITERATIONS"]
    cfg = load_config(cwd=project, env=env)
    assert (cfg.iterations, cfg.values["iterations"].source) == (2, "project file iteratr.yml:2")

    (project / "iteratr.yml").unlink()
    cfg = load_config(cwd=project, env=env)
    assert (cfg.iterations, cfg.values["iterations"].source) == (1, f"global file {global_file}:1")

    global_file.unlink()
    cfg = load_config(cwd=project, env=env)
    assert (cfg.iterations, cfg.values["iterations"].source) == (0, "default")


# For every key: a value for the global file, the project file, the env var and the flag, each different from
# the layer below, so each layer is seen winning over the one below for every key (and each env var's name).
LAYER_VALUES: dict[str, tuple[str, str, str, object, object]] = {
    # key: (global yaml, project yaml, env text, flag value, what the flag resolves to)
    "model": ("g/model", "p/model", "e/model", "f/model", "f/model"),
    "agent": ("g-agent acp", "p-agent acp", "e-agent --acp", "python 'my agent.py'", "python 'my agent.py'"),
    "auto_commit": ("false", "true", "no", True, True),
    "data_dir": ("g-data", "p-data", "e-data", "f-data", "f-data"),
    "log_level": ("info", "warn", "ERROR", "debug", "debug"),
    "log_file": ("g.log", "p.log", "e.log", "f.log", "f.log"),
    "iterations": ("1", "2", "3", 4, 4),
    "headless": ("true", "false", "on", "off", False),
    "template": ("g.j2", "p.j2", "e.j2", "f.j2", "f.j2"),
    "iteration_timeout": ("100", "200", "5m", 400.5, 400.5),
    "idle_timeout": ("10", "20.5", "30s", "1h", 3600),
    "max_failures": ("1", "2", "7", 9, 9),
    "retry_delay": ("0", "1", "2.5", 3, 3),
    "push": ("origin", "upstream", "backup", "fork", "fork"),
    "lease_ttl": ("60", "2m", "1h", 90, 90),
    "max_file_size": ("1KB", "2MB", "3g", 4096, 4096),
    "permissions": ("deny", "allow", "deny", "allow", "allow"),
    "stall_limit": ("1", "2", "0", 4, 4),
    "max_cost": ("1", "2 USD", "$3", "4.5", "4.5"),
    "max_tokens": ("10", "20", "30", 40, 40),
    "max_time": ("1m", "2h", "30", 45, 45),
    "session_max_cost": ("1 EUR", "2", "3", "4", "4"),
    "session_max_tokens": ("10", "20", "30", 40, 40),
    "timestamps": ("true", "false", "on", "off", False),
    "keep_prompts": ("1", "2", "3", 4, 4),
}


def test_layer_values_cover_every_key() -> None:
    assert set(LAYER_VALUES) == set(KEYS)


@pytest.mark.parametrize("name", sorted(LAYER_VALUES))
def test_every_key_resolves_through_every_layer(name: str, layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, global_file = layout
    g, p, e, flag, flag_resolved = LAYER_VALUES[name]
    key = KEYS[name]
    seen = [load_config(cwd=project, env=env)]
    write(global_file, f"{name}: {g}\n")
    seen.append(load_config(cwd=project, env=env))
    write(project / "iteratr.yml", f"{name}: {p}\n")
    seen.append(load_config(cwd=project, env=env))
    env[key.env] = e
    seen.append(load_config(cwd=project, env=env))
    seen.append(load_config(cwd=project, env=env, flags={name: flag}))

    sources = [cfg.values[name].source for cfg in seen]
    assert sources == [
        "default",
        f"global file {global_file}:1",
        "project file iteratr.yml:1",
        f"env {key.env}",
        f"flag {key.flag}",
    ]
    values = [cfg[name] for cfg in seen]
    assert all(a != b for a, b in itertools.pairwise(values)), f"each layer must change {name}: {values}"
    assert values[0] == key.default
    assert values[1] == key.validate(g if key.type is str else _yaml_scalar(g))
    assert values[4] == flag_resolved


def _yaml_scalar(text: str) -> object:
    from ruamel.yaml import YAML

    return YAML().load(f"v: {text}\n")["v"]


def test_keys_from_different_layers_mix(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, global_file = layout
    write(global_file, "model: global/model\nauto_commit: false\nlog_level: debug\n")
    write(project / "iteratr.yml", "auto_commit: true\n")
    env["ITERATR_LOG_LEVEL"] = "error"
    cfg = load_config(cwd=project, env=env, flags={"headless": True, "model": None})
    assert cfg.model == "global/model"
    assert cfg.auto_commit is True
    assert cfg.values["auto_commit"].source == "project file iteratr.yml:1"
    assert cfg.log_level == "error"
    assert cfg.log_level_number == 40
    assert cfg.headless is True
    assert cfg.values["headless"].source == "flag --headless"
    assert cfg.values["iterations"].source == "default"


def test_false_flag_beats_true_env(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    env["ITERATR_AUTO_COMMIT"] = "true"
    cfg = load_config(cwd=project, env=env, flags={"auto_commit": False})
    assert cfg.auto_commit is False
    assert cfg.values["auto_commit"].source == "flag --auto-commit"


def test_null_in_a_file_means_not_set(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, global_file = layout
    write(global_file, "model: from/global\n")
    write(project / "iteratr.yml", "model:\niterations: ~\n")
    cfg = load_config(cwd=project, env=env)
    assert cfg.model == "from/global"
    assert cfg.values["iterations"].source == "default"
    assert read_config_file(project / "iteratr.yml") == {}


def test_empty_env_var_sets_text_keys_and_is_ignored_for_others(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    write(project / "iteratr.yml", "push: origin\niterations: 7\nheadless: true\n")
    env.update({"ITERATR_PUSH": "", "ITERATR_ITERATIONS": "", "ITERATR_HEADLESS": ""})
    cfg = load_config(cwd=project, env=env)
    assert (cfg.push, cfg.values["push"].source) == ("", "env ITERATR_PUSH")
    assert (cfg.iterations, cfg.headless) == (7, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("NO", False),
        ("off", False),
        ("0", False),
        (" yes ", True),
    ],
)
def test_env_booleans(text: str, expected: bool, layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    env["ITERATR_HEADLESS"] = text
    env["ITERATR_AUTO_COMMIT"] = text
    cfg = load_config(cwd=project, env=env)
    assert cfg.headless is expected
    assert cfg.auto_commit is expected


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [("yes", True), ("no", False), ("'off'", False), ("True", True)],
)
def test_file_booleans_accept_the_same_words(
    yaml_value: str, expected: bool, layout: tuple[Path, dict[str, str], Path]
) -> None:
    project, env, _ = layout
    write(project / "iteratr.yml", f"auto_commit: {yaml_value}\n")
    assert load_config(cwd=project, env=env).auto_commit is expected


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("0.25", 0.25), ("2e3", 2000)]
)
def test_durations(text: str, seconds: float, layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    env["ITERATR_IDLE_TIMEOUT"] = text
    assert load_config(cwd=project, env=env).idle_timeout == seconds


def test_agent_argv_splits_like_a_shell(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    cfg = load_config(cwd=project, env=env, flags={"agent": "python '/tmp/my agent.py' --acp"})
    assert cfg.agent_argv == ["python", "/tmp/my agent.py", "--acp"]
    assert cfg.agent == "python '/tmp/my agent.py' --acp"


def test_tilde_expands_in_paths(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    write(project / "iteratr.yml", "template: ~/t.j2\nlog_file: ~/iteratr.log\n")
    cfg = load_config(cwd=project, env=env)
    assert cfg.template == str(Path.home() / "t.j2")
    assert cfg.log_file == str(Path.home() / "iteratr.log")


def test_empty_and_comment_only_files_are_fine(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, global_file = layout
    write(global_file, "")
    write(project / "iteratr.yml", "# nothing here yet\n\n")
    cfg = load_config(cwd=project, env=env)
    assert all(r.source == "default" for r in cfg.values.values())


def test_project_dir_that_is_the_global_dir_reads_the_file_once(layout: tuple[Path, dict[str, str], Path]) -> None:
    _, env, global_file = layout
    write(global_file, "iterations: 5\n")
    cfg = load_config(cwd=global_file.parent, env=env)
    assert (cfg.iterations, cfg.values["iterations"].source) == (5, "project file iteratr.yml:1")


def test_unknown_flag_key_is_a_programming_error(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    with pytest.raises(ValueError, match="no config key 'iteration'"):
        load_config(cwd=project, env=env, flags={"iteration": 3})


def test_other_iteratr_env_vars_are_not_config(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    env.update({"ITERATR_SESSION": "s", "ITERATR_ITERATION": "4", "ITERATR_BIN": "iteratr"})
    cfg = load_config(cwd=project, env=env)
    assert all(r.source == "default" for r in cfg.values.values())


# --- paths -------------------------------------------------------------------------------------------------


def test_global_path_honours_xdg_config_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert global_config_path(env) == tmp_path / "xdg" / "iteratr" / "iteratr.yml"


def test_global_path_without_xdg_is_under_home(tmp_path: Path) -> None:
    assert global_config_path({"HOME": str(tmp_path)}) == tmp_path / ".config" / "iteratr" / "iteratr.yml"
    assert global_config_path({"HOME": str(tmp_path), "XDG_CONFIG_HOME": ""}) == (
        tmp_path / ".config" / "iteratr" / "iteratr.yml"
    )


def test_relative_xdg_config_home_is_ignored(tmp_path: Path) -> None:
    # The XDG base directory spec: a relative path is invalid and must be ignored.
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "relative/dir"}
    assert global_config_path(env) == tmp_path / ".config" / "iteratr" / "iteratr.yml"


def test_global_path_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    assert global_config_path() == tmp_path / "x" / "iteratr" / "iteratr.yml"


def test_project_path(tmp_path: Path) -> None:
    assert project_config_path(tmp_path) == tmp_path / "iteratr.yml"


def test_project_file_is_read_from_the_top_of_the_work_tree(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    (project / ".git").mkdir()  # the top of a work tree (a file in a linked worktree)
    write(project / "iteratr.yml", "model: top/model\n")
    write(project / "src" / "deep" / "iteratr.yml", "model: not/this\n")  # only the top's file counts
    cfg = load_config(cwd=project / "src" / "deep", env=env)
    assert (cfg.model, cfg.source("model")) == ("top/model", f"project file {project / 'iteratr.yml'}:1")
    assert project_config_path(project / "src") == project / "iteratr.yml"


def test_config_without_files_is_the_environment_over_the_defaults(
    layout: tuple[Path, dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, env, global_file = layout
    write(global_file, "model: [broken\n")
    monkeypatch.chdir(project)
    write(project / "iteratr.yml", "iterations: lots\n")
    cfg = config_mod.config_without_files({**env, "ITERATR_MODEL": "env/model"})
    assert (cfg.model, cfg.source("model"), cfg.iterations) == ("env/model", "env ITERATR_MODEL", 0)
    bad_env = config_mod.config_without_files({**env, "ITERATR_MODEL": "env/model", "ITERATR_ITERATIONS": "x"})
    assert all(resolved.source == "default" for resolved in bad_env.values.values())


# --- error messages ----------------------------------------------------------------------------------------

BAD_FILES = [
    # (file text, the exact message after "iteratr.yml:")
    ("model: x\n\niterations: lots\n", "3: iterations: 'lots' is not a whole number >= 0"),
    ("iterations: -1\n", "1: iterations: -1 is not a whole number >= 0"),
    ("iterations: 2.5\n", "1: iterations: 2.5 is not a whole number >= 0"),
    ("iterations: true\n", "1: iterations: true is not a whole number >= 0"),
    ("max_failures: 0\n", "1: max_failures: 0 is not a whole number >= 1"),
    ("auto_commit: maybe\n", "1: auto_commit: 'maybe' is not true or false (also accepted: yes/no, on/off, 1/0)"),
    ("headless: 2\n", "1: headless: 2 is not true or false (also accepted: yes/no, on/off, 1/0)"),
    ("log_level: loud\n", "1: log_level: 'loud' is not one of debug, info, warn, warning, error"),
    ("model: 5\n", "1: model: 5 is not text (put it in quotes)"),
    ("model: [a, b]\n", "1: model: ['a', 'b'] is not text (put it in quotes)"),
    ("agent: ''\n", "1: agent: '' is not a command line: it is empty (e.g. 'opencode acp')"),
    ("agent: '\"x'\n", "1: agent: '\"x' is not a command line (No closing quotation), e.g. 'opencode acp'"),
    ("data_dir: ''\n", "1: data_dir: '' is not a directory path (it must not be empty)"),
    ("iteration_timeout: 0\n", "1: iteration_timeout: 0 is not a number of seconds > 0 (e.g. 90, 90s, 30m, 1h)"),
    ("idle_timeout: soon\n", "1: idle_timeout: 'soon' is not a number of seconds > 0 (e.g. 90, 90s, 30m, 1h)"),
    ("idle_timeout: .inf\n", "1: idle_timeout: inf is not a number of seconds > 0 (e.g. 90, 90s, 30m, 1h)"),
    ("retry_delay: -1\n", "1: retry_delay: -1 is not a number of seconds >= 0 (e.g. 90, 90s, 30m, 1h)"),
    ("push: --force\n", "1: push: '--force' is not a git remote name (or '' for no push)"),
    ("push: my remote\n", "1: push: 'my remote' is not a git remote name (or '' for no push)"),
    ("model: a\niteration: 3\n", "2: unknown key 'iteration': did you mean 'iterations'?"),
    ("Model: a\n", "1: unknown key 'Model': did you mean 'model'?"),
    ("auto-commit: true\n", "1: unknown key 'auto-commit': did you mean 'auto_commit'?"),
    ("# a list\n- model\n", "2: the file must be a mapping of keys to values (like 'iterations: 5'), not a list"),
    (
        "just text\n",
        "1: the file must be a mapping of keys to values (like 'iterations: 5'), not the value 'just text'",
    ),
    (
        "model: a\nagent: [x,\n",
        "3: invalid YAML: expected the node content, but found '<stream end>' (while parsing a flow node)",
    ),
    ("model: 'open\n", "2: invalid YAML: found unexpected end of stream (while scanning a quoted scalar on line 1)"),
    ("model: a: b\n", "1: invalid YAML: mapping values are not allowed here"),
    (
        "\tmodel: a\n",
        "1: invalid YAML: found character '\\t' that cannot start any token (while scanning for the next token)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_file_messages(text: str, message: str, layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    error = config_error(project, env, text)
    assert error.message == f"iteratr.yml:{message}"
    assert "\n" not in str(error)
    assert error.exit_code == EXIT_USAGE


def test_unknown_key_without_a_close_match_lists_the_keys(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    error = config_error(project, env, "colour: blue\n")
    assert error.message.startswith("iteratr.yml:1: unknown key 'colour': known keys are model, agent, ")
    assert all(name in error.message for name in KEYS)


def test_duplicate_key_names_the_second_line(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    error = config_error(project, env, "model: a\niterations: 1\nmodel: b\n")
    assert error.message.startswith('iteratr.yml:3: invalid YAML: found duplicate key "model"')
    assert "\n" not in error.message


def test_several_documents_are_refused(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    error = config_error(project, env, "model: a\n---\nmodel: b\n")
    assert error.message.startswith("iteratr.yml:2: invalid YAML: but found another document")


def test_non_utf8_file(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    (project / "iteratr.yml").write_bytes(b"model: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"^iteratr\.yml: not UTF-8 text \(bad byte at offset 10\)$"):
        load_config(cwd=project, env=env)


def test_control_character_names_its_line(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    error = config_error(project, env, "model: a\nagent: b\x01\n")
    assert error.message.startswith("iteratr.yml:2: invalid YAML: ")


def test_config_path_that_is_a_directory(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    (project / "iteratr.yml").mkdir()
    with pytest.raises(ConfigError, match=r"^iteratr\.yml: cannot read: Is a directory$"):
        load_config(cwd=project, env=env)


def test_bad_global_file_names_its_full_path(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, global_file = layout
    write(global_file, "# mine\niterations: lots\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=project, env=env)
    assert info.value.message == f"{global_file}:2: iterations: 'lots' is not a whole number >= 0"


def test_bad_file_is_reported_even_when_env_and_flag_override_the_key(
    layout: tuple[Path, dict[str, str], Path],
) -> None:
    project, env, _ = layout
    env["ITERATR_ITERATIONS"] = "3"
    with pytest.raises(ConfigError, match="iterations: 'lots'"):
        write(project / "iteratr.yml", "iterations: lots\n")
        load_config(cwd=project, env=env, flags={"iterations": 4})


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("ITERATR_ITERATIONS", "lots", "environment variable ITERATR_ITERATIONS: 'lots' is not a whole number >= 0"),
        (
            "ITERATR_HEADLESS",
            "maybe",
            "environment variable ITERATR_HEADLESS: 'maybe' is not true or false (also accepted: yes/no, on/off, 1/0)",
        ),
        (
            "ITERATR_LOG_LEVEL",
            "loud",
            "environment variable ITERATR_LOG_LEVEL: 'loud' is not one of debug, info, warn, warning, error",
        ),
        (
            "ITERATR_AGENT",
            "",
            "environment variable ITERATR_AGENT: '' is not a command line: it is empty (e.g. 'opencode acp')",
        ),
        (
            "ITERATR_IDLE_TIMEOUT",
            "-5",
            "environment variable ITERATR_IDLE_TIMEOUT: '-5' is not a number of seconds > 0 (e.g. 90, 90s, 30m, 1h)",
        ),
    ],
)
def test_bad_env_values_name_the_variable(
    var: str, value: str, message: str, layout: tuple[Path, dict[str, str], Path]
) -> None:
    project, env, _ = layout
    env[var] = value
    with pytest.raises(ConfigError) as info:
        load_config(cwd=project, env=env)
    assert info.value.message == message
    assert info.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"iterations": -2}, "--iterations: -2 is not a whole number >= 0"),
        ({"max_failures": "none"}, "--max-failures: 'none' is not a whole number >= 1"),
        ({"agent": "  "}, "--agent: '  ' is not a command line: it is empty (e.g. 'opencode acp')"),
        ({"iteration_timeout": 0}, "--iteration-timeout: 0 is not a number of seconds > 0 (e.g. 90, 90s, 30m, 1h)"),
    ],
)
def test_bad_flag_values_name_the_flag(
    flags: dict[str, object], message: str, layout: tuple[Path, dict[str, str], Path]
) -> None:
    project, env, _ = layout
    with pytest.raises(UsageError) as info:
        load_config(cwd=project, env=env, flags=flags)
    assert not isinstance(info.value, ConfigError)
    assert info.value.message == message
    assert info.value.exit_code == EXIT_USAGE


def test_read_config_file_gives_values_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yml", "# c\nmodel: m\n\niterations: '4'\nidle_timeout: 2m\n")
    assert read_config_file(path) == {"model": ("m", 2), "iterations": (4, 4), "idle_timeout": (120, 5)}


# --- writing -----------------------------------------------------------------------------------------------

COMMENTED = """\
# My iteratr settings
# (hand-written)

iterations: 3    # three is plenty
model: "old/model"  # the model I like

# keep my work
auto_commit: false
"""


def test_write_updates_in_place_keeping_comments_and_order(tmp_path: Path) -> None:
    path = write(tmp_path / "iteratr.yml", COMMENTED)
    write_config_file(path, {"model": "new/model", "auto_commit": True, "push": "origin"})
    text = path.read_text()
    assert (
        text
        == COMMENTED.replace('"old/model"', '"new/model"').replace("auto_commit: false", "auto_commit: true")
        + "push: origin\n"
    )
    values = read_config_file(path)
    assert list(values) == ["iterations", "model", "auto_commit", "push"]
    assert values["model"] == ("new/model", 5)


def test_write_none_removes_a_key(tmp_path: Path) -> None:
    path = write(tmp_path / "iteratr.yml", "# top\nmodel: a\niterations: 2\n")
    write_config_file(path, {"model": None})
    assert path.read_text() == "# top\niterations: 2\n"


def test_write_new_file_creates_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "iteratr.yml"
    write_config_file(path, {"model": "m/x", "auto_commit": False})
    assert path.read_text() == (
        "# iteratr configuration. `iteratr config` shows every value and where it comes from.\n"
        "model: m/x\nauto_commit: false\n"
    )
    assert read_config_file(path) == {"model": ("m/x", 2), "auto_commit": (False, 3)}


def test_write_force_starts_over(tmp_path: Path) -> None:
    path = write(tmp_path / "iteratr.yml", COMMENTED)
    write_config_file(path, {"model": "fresh"}, force=True)
    text = path.read_text()
    assert "hand-written" not in text and "iterations" not in text
    assert read_config_file(path) == {"model": ("fresh", 2)}


def test_write_keeps_a_comment_only_file(tmp_path: Path) -> None:
    path = write(tmp_path / "iteratr.yml", "# only notes so far")
    write_config_file(path, {"iterations": 9})
    assert path.read_text() == "# only notes so far\niterations: 9\n"


def test_write_values_are_validated_and_quoted_when_needed(tmp_path: Path) -> None:
    path = tmp_path / "iteratr.yml"
    write_config_file(path, {"model": "yes", "push": "", "agent": "python 'a b.py'", "idle_timeout": "10m"})
    assert read_config_file(path) == {
        "model": ("yes", 2),
        "push": ("", 3),
        "agent": ("python 'a b.py'", 4),
        "idle_timeout": (600, 5),
    }


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"iterations": "lots"}, "iterations: 'lots' is not a whole number >= 0"),
        ({"modle": "x"}, "unknown key 'modle': did you mean 'model'?"),
    ],
)
def test_write_refuses_bad_updates_and_leaves_the_file(
    updates: dict[str, object], message: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "iteratr.yml", COMMENTED)
    with pytest.raises(ConfigError) as info:
        write_config_file(path, updates)
    assert info.value.message == f"cannot write {path}: {message}"
    assert path.read_text() == COMMENTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iteratr.yml"]


def test_write_refuses_a_broken_file_unless_forced(tmp_path: Path) -> None:
    path = write(tmp_path / "iteratr.yml", "model: [oops\n")
    with pytest.raises(ConfigError) as info:
        write_config_file(path, {"model": "m"})
    assert info.value.message.startswith(f"{path}:2: invalid YAML: ")
    assert info.value.message.endswith("; fix it, or start the file over with --force")
    assert path.read_text() == "model: [oops\n"
    write_config_file(path, {"model": "m"}, force=True)
    assert read_config_file(path) == {"model": ("m", 2)}


def test_write_failure_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection: the rename that would publish the new file fails (disk full, EXDEV, ...).
    path = write(tmp_path / "iteratr.yml", COMMENTED)

    def failing_replace(src: object, dst: object, **_dir_fds: object) -> None:
        assert Path(str(src)).read_text().startswith("# My iteratr settings")  # the new text was complete
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("iteratr.config.os.replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_config_file(path, {"model": "new"})
    assert path.read_text() == COMMENTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iteratr.yml"]


def test_write_failure_midway_leaves_no_new_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "iteratr.yml"

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("iteratr.config.os.fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_config_file(path, {"model": "new"})
    assert list(tmp_path.iterdir()) == []


def test_write_keeps_the_file_mode(tmp_path: Path) -> None:
    path = write(tmp_path / "iteratr.yml", "model: a\n")
    path.chmod(0o600)
    write_config_file(path, {"model": "b"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_config_file(path)["model"] == ("b", 1)


def test_write_follows_a_symlink(tmp_path: Path) -> None:
    real = write(tmp_path / "dotfiles" / "iteratr.yml", "model: a  # synced\n")
    link = tmp_path / "config" / "iteratr.yml"
    link.parent.mkdir()
    link.symlink_to(real)
    write_config_file(link, {"model": "b"})
    assert link.is_symlink()
    assert real.read_text() == "model: b  # synced\n"


# --- output ------------------------------------------------------------------------------------------------


def test_render_text_aligns_every_key_value_and_source(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    write(project / "iteratr.yml", "model: some/model\n")
    cfg = load_config(cwd=project, env=env, flags={"headless": True})
    text = render_text(cfg)
    assert not text.endswith("\n")
    lines = text.split("\n")
    assert [line.split()[0] for line in lines] == list(KEYS)
    by_key = {line.split()[0]: line for line in lines}
    assert by_key["model"].split() == ["model", "some/model", "project", "file", "iteratr.yml:1"]
    assert by_key["headless"].split() == ["headless", "true", "flag", "--headless"]
    assert by_key["template"].split() == ["template", '""', "default"]
    value_columns = {line.index(line.split()[1], len(line.split()[0])) for line in lines}
    source_columns = {line.rindex(cfg.values[line.split()[0]].source) for line in lines}
    assert len(value_columns) == 1 and len(source_columns) == 1


def test_to_json_is_json_with_value_and_source(layout: tuple[Path, dict[str, str], Path]) -> None:
    project, env, _ = layout
    env["ITERATR_ITERATIONS"] = "6"
    data = json.loads(json.dumps(load_config(cwd=project, env=env).to_json()))
    assert set(data) == set(KEYS)
    assert data["iterations"] == {"value": 6, "source": "env ITERATR_ITERATIONS"}
    assert data["auto_commit"] == {"value": True, "source": "default"}


def test_config_getitem_and_typed_accessors() -> None:
    cfg = Config({name: config_mod.Resolved(key.default, "default") for name, key in KEYS.items()})
    assert cfg["agent"] == "opencode acp"
    assert isinstance(cfg.iteration_timeout, float)
    with pytest.raises(KeyError):
        cfg["nope"]


def test_importing_config_does_not_import_ruamel() -> None:
    code = "import sys, iteratr.config; sys.exit(any(m.startswith('ruamel') for m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        ("max_cost", "-5", "an amount >= 0 like 5, 2.50, 5 USD, EUR 5 or $5"),
        ("max_cost", "lots", "an amount >= 0"),
        ("max_cost", "5 XYZ", "unknown currency 'XYZ'"),
        ("session_max_cost", "-1", "an amount >= 0"),
        ("max_tokens", "-100", "a whole number >= 0"),
        ("session_max_tokens", "many", "a whole number >= 0"),
        ("max_time", "-2h", "a number of seconds >= 0"),
        ("stall_limit", "-1", "a whole number >= 0"),
        ("stall_limit", "three", "a whole number >= 0"),
    ],
)
def test_bad_budgets_and_stall_limit_name_key_file_and_line(
    tmp_path: Path, key: str, value: str, accepted: str
) -> None:
    (tmp_path / "iteratr.yml").write_text(f"model: m\n{key}: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"iteratr.yml:2: {key}: "), str(info.value)
    assert accepted in str(info.value)
