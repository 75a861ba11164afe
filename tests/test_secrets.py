"""Secret-looking environment values are masked in text and in event data."""

from __future__ import annotations

from iteratr.secrets import Masker, secret_values


def test_values_of_secret_named_variables_are_masked() -> None:
    env = {"OPENAI_API_KEY": "sk-abcdef123456", "GH_TOKEN": "ghp_zzzzzzzz", "HOME": "/home/me", "DB_PASSWORD": "x"}
    mask = Masker(env)
    text = "error: 401 for key sk-abcdef123456 (token ghp_zzzzzzzz) in /home/me"
    assert mask(text) == "error: 401 for key *** (token ***) in /home/me"
    assert secret_values(env) == ["sk-abcdef123456", "ghp_zzzzzzzz"]  # short values are not masked
    assert mask.deep({"error": ["sk-abcdef123456"], "n": 1}) == {"error": ["***"], "n": 1}


def test_nothing_to_mask_is_identity() -> None:
    assert Masker({"PATH": "/bin"})("sk-abcdef123456") == "sk-abcdef123456"
