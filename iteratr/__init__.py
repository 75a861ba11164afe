"""iteratr: run an ACP coding agent in a loop until a spec is done, one git commit per iteration."""

__version__ = "0.1.0"
