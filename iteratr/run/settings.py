"""The build loop's settings: frozen, typed, and complete before the loop starts.

``Settings.resolve`` is the one place they are made: the values that are settings come from the resolved
``Config`` (so from the settings table in ``iteratr.config``), the rest from what ``iteratr build``
prepared (the session, its work tree, the loaded templates and hooks).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from iteratr import config_values, paths
from iteratr.agent import permissions as permissions_mod
from iteratr.config import Config, defaults
from iteratr.run import hooks as hooks_mod
from iteratr.run import prompt
from iteratr.run.guards import Budgets

# Defaults of the fields below that have them come from the settings table, never written a second time here.
_DEFAULT = defaults()


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
    # The agent's permission policy (config key ``permissions``), parsed; the default allows, as before.
    permissions: permissions_mod.Policy = field(default=permissions_mod.DEFAULT)
    # Guard rails (iteratr.run.guards): iterations in a row without progress before a stop (0 = off), and budgets.
    stall_limit: int = _DEFAULT.stall_limit
    budgets: Budgets = field(default_factory=Budgets)
    max_file_size: int = _DEFAULT.max_file_size  # bytes; 0 = no limit (config key ``max_file_size``)
    keep_prompts: int = _DEFAULT.keep_prompts  # the last prompts kept in .iteratr/S/prompts/; 0 = none

    @classmethod
    def resolve(
        cls,
        cfg: Config,
        *,
        session: str,
        work_tree: Path,
        data_dir: Path,
        spec_path: Path,
        extra: str,
        templates: dict[str, prompt.Template],
        hooks: hooks_mod.HooksConfig | None,
        binary: list[str],
    ) -> Settings:
        return cls(
            session=session,
            work_tree=work_tree,
            data_dir=data_dir,
            spec_path=spec_path,
            agent_argv=cfg.agent_argv,
            model=cfg.model or None,
            iterations=cfg.iterations,
            iteration_timeout=cfg.iteration_timeout,
            idle_timeout=cfg.idle_timeout,
            max_failures=cfg.max_failures,
            retry_delay=cfg.retry_delay,
            auto_commit=cfg.auto_commit,
            push=cfg.push,
            extra=extra,
            templates=templates,
            hooks=hooks,
            binary=shlex.join(binary),
            branch=paths.branch_name(session),
            permissions=permissions_mod.parse_policy(cfg.permissions),
            max_file_size=cfg.max_file_size,
            keep_prompts=cfg.keep_prompts,
            stall_limit=cfg.stall_limit,
            budgets=budgets_of(cfg),
        )


def budgets_of(cfg: Config) -> Budgets:
    """The budget keys as limits (0 and "" are no limit)."""
    run_cost = config_values.parse_money(cfg.max_cost)
    session_cost = config_values.parse_money(cfg.session_max_cost)
    return Budgets(
        max_cost=run_cost[0] if run_cost else None,
        max_cost_currency=run_cost[1] if run_cost else None,
        max_tokens=cfg.max_tokens or None,
        max_time=cfg.max_time or None,
        session_max_cost=session_cost[0] if session_cost else None,
        session_max_cost_currency=session_cost[1] if session_cost else None,
        session_max_tokens=cfg.session_max_tokens or None,
    )
