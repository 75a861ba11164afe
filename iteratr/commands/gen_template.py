"""``iteratr gen-template``: write the built-in prompt template to a file, to customise it."""

from __future__ import annotations

from pathlib import Path

from iteratr.output import Printer
from iteratr.run import prompt


def run(*, output: Path, force: bool, out: Printer | None = None) -> int:
    """Refuses (exit 2) to overwrite an existing file unless ``force``."""
    path = prompt.write_default_template(output, force=force)
    (out or Printer()).line(f"wrote the default template to {path}; use it with: iteratr build --template {path}")
    return 0
