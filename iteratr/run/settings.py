"""The build loop's settings: frozen, typed, and complete before the loop starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iteratr.run import hooks as hooks_mod
from iteratr.run import prompt


@dataclass(frozen=True)
class Settings:
    """Everything one run of the loop needs, resolved and validated by ``commands.build`` before it starts."""

    session: str
    work_tree: Path
    data_dir: Path
    spec_path: Path
    agent_argv: list[str]
    model: str | None
    iterations: int  # 0 = no limit
    iteration_timeout: float
    idle_timeout: float
    max_failures: int
    retry_delay: float
    auto_commit: bool
    push: str  # remote name, "" = off
    extra: str
    templates: dict[str, prompt.Template]
    hooks: hooks_mod.HooksConfig | None
    binary: str
    branch: str
