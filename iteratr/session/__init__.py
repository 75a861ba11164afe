"""The session's state: events, reducer, store and task view. The `iteratr tool` path: imports nothing heavy."""
