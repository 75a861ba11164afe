"""Unknown ``ITERATR_*`` variables get a warning with a "did you mean"; a bad value in a key's variable is exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iteratr import cli, config_env
from iteratr.config import KEYS
from iteratr.run.hooks import VARIABLES, env_name

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_a_typo_gets_a_did_you_mean() -> None:
    assert config_env.unknown({"ITERATR_ITRATIONS": "3", "ITERATR_MODLE": "m", "PATH": "/bin"}) == [
        "unknown environment variable ITERATR_ITRATIONS: did you mean ITERATR_ITERATIONS?",
        "unknown environment variable ITERATR_MODLE: did you mean ITERATR_MODEL?",
    ]
    [far] = config_env.unknown({"ITERATR_WHATEVER": "1"})
    assert (
        far
        == "unknown environment variable ITERATR_WHATEVER: iteratr does not read it (`iteratr config` lists the keys)"
    )


def test_the_variables_iteratr_sets_or_reads_are_not_warned_about() -> None:
    env = {key.env: "" for key in KEYS.values()}
    env |= {name: "x" for name in config_env.OTHER_VARIABLES}
    env |= {env_name(v): "x" for v in VARIABLES} | {"ITERATR_OPENCODE_BIN": "/x"}
    assert config_env.unknown(env) == []


def test_every_iteratr_variable_in_the_source_is_a_key_or_listed() -> None:
    """The one list stays complete: a new ``ITERATR_X`` read or set anywhere must be a key or in OTHER_VARIABLES."""
    known = {key.env for key in KEYS.values()} | config_env.OTHER_VARIABLES
    found: set[str] = set()
    for path in [*(REPO_ROOT / "iteratr").rglob("*.py"), *(REPO_ROOT / "tests").rglob("*.py")]:
        found |= set(re.findall(r"\bITERATR_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    ignored = {
        "ITERATR_CMD",
        "ITERATR_X",
        "ITERATR_K",
        "ITERATR_NAME",
        "ITERATR_ITRATIONS",
        "ITERATR_MODLE",
        "ITERATR_WHATEVER",
    }
    missing = {n for n in found - known - ignored if not n.startswith(config_env.OTHER_PREFIXES)}
    assert not missing, f"add to iteratr.config_env.OTHER_VARIABLES (or make them keys): {sorted(missing)}"


def test_the_cli_warns_on_stderr_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ITERATR_ITRATIONS", "3")
    assert cli.run(["version"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        "iteratr: warning: unknown environment variable ITERATR_ITRATIONS: did you mean ITERATR_ITERATIONS?\n"
    )
    assert captured.out.startswith("iteratr ")


def test_a_bad_value_in_a_keys_variable_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ITERATR_ITERATIONS", "lots")
    assert cli.run(["config"]) == 2
    assert capsys.readouterr().err == (
        "iteratr: error: environment variable ITERATR_ITERATIONS: 'lots' is not a whole number >= 0\n"
    )
