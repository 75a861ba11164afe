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
    (out or Printer()).text(json.dumps(cfg.to_json(), indent=2) if as_json else config.render_text(cfg))
    return 0
