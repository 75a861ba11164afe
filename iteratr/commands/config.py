"""``iteratr config``: every resolved setting and where it came from (default, file and line, env, flag).

Run anywhere in the work tree: the project file is the one at its top (see ``iteratr.config``).
"""

from __future__ import annotations

import json
from pathlib import Path

from iteratr import config
from iteratr.output import Printer


def run(*, as_json: bool, cwd: Path | None = None, out: Printer | None = None) -> int:
    cfg = config.load_config(cwd=cwd or Path.cwd())
    (out or Printer()).text(json.dumps(cfg.to_json(), indent=2) if as_json else render_text(cfg))
    return 0


def render_value(value: object) -> str:
    """A value as ``iteratr config`` and the README show it: true, "", 1800."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


def render_text(cfg: config.Config) -> str:
    """One aligned line per key: name, value, source. No trailing newline."""
    rows = [(name, render_value(r.value), r.source) for name, r in cfg.values.items()]
    width_key = max(len(row[0]) for row in rows)
    width_value = max(len(row[1]) for row in rows)
    return "\n".join(f"{k:<{width_key}}  {v:<{width_value}}  {s}" for k, v, s in rows)
