"""Masking secrets: values of environment variables whose names look secret never reach what iteratr writes.

An agent's stderr, a hook's output or an error message can carry a credential (a failed request that echoes
its headers, a tool that prints its config). iteratr commits its log and pushes it, so before any text goes
into an event, a commit message, a prompt or the output, every value of a variable named like ``*KEY*``,
``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*`` (and a few common spellings) is replaced with ``***``.

Short values are left alone: masking ``1`` or ``true`` everywhere would garble the text and protect nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|PRIVATE", re.IGNORECASE)
MIN_SECRET_LENGTH = 6
MASK = "***"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values to mask, longest first (so a value containing another is masked whole)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and len(v.strip()) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


class Masker:
    """Masks the secret values of one environment, compiled once."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        values = secret_values(environ)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def deep(self, value: object) -> object:
        """Mask every string inside a JSON-like value (an event's data)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value
