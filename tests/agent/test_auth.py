"""``agent.auth``: which ACP authentication method an API key variable in the environment stands for."""

from __future__ import annotations

from acp.schema import InitializeResponse

from iteratr.agent.auth import AUTH_REQUIRED, env_auth_method

METHODS = (
    InitializeResponse.model_validate(
        {
            "protocolVersion": 1,
            "authMethods": [
                {"id": "chatgpt", "name": "Login with ChatGPT"},
                {
                    "type": "env_var",
                    "id": "codex-api-key",
                    "name": "CODEX_API_KEY",
                    "vars": [{"name": "CODEX_API_KEY"}],
                },
                {
                    "type": "env_var",
                    "id": "two-vars",
                    "name": "a key and an optional org",
                    "vars": [{"name": "KEY_A"}, {"name": "ORG_B", "optional": True}],
                },
            ],
        }
    ).auth_methods
    or []
)


def test_the_first_env_var_method_whose_variables_are_set() -> None:
    assert env_auth_method(AUTH_REQUIRED, METHODS, {"CODEX_API_KEY": "k"}) == "codex-api-key"
    assert env_auth_method(AUTH_REQUIRED, METHODS, {"KEY_A": "k"}) == "two-vars"  # ORG_B is optional


def test_nothing_without_the_variable_or_for_another_error() -> None:
    assert env_auth_method(AUTH_REQUIRED, METHODS, {}) is None
    assert env_auth_method(AUTH_REQUIRED, METHODS, {"CODEX_API_KEY": "  "}) is None
    assert env_auth_method(-32603, METHODS, {"CODEX_API_KEY": "k"}) is None
    assert env_auth_method(AUTH_REQUIRED, [], {"CODEX_API_KEY": "k"}) is None
