from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigurationError
from gateway.settings import DEV_POLICY_PATH, load_settings


def test_defaults_match_the_contract() -> None:
    s = load_settings({})
    assert (s.APP_ENV, s.GATEWAY_HOST, s.GATEWAY_PORT) == ("dev", "127.0.0.1", 8080)
    assert (s.STT_MODEL, s.STT_WINDOW_SECONDS, s.STT_WINDOW_MAX_SECONDS) == ("whisper-1", 5, 15)
    assert (s.STT_MAX_CONCURRENCY, s.STT_MAX_RETRIES, s.STT_REQUEST_TIMEOUT_SECONDS) == (32, 3, 30)
    assert (s.BREAKER_FAIL_MAX, s.BREAKER_RESET_SECONDS) == (5, 30)
    assert (
        s.MAX_SESSIONS,
        s.IDLE_TIMEOUT_SECONDS,
        s.MAX_PENDING_AUDIO_SECONDS,
        s.MAX_FRAME_BYTES,
    ) == (2000, 30, 60, 65536)
    assert s.BUDGET_ENFORCEMENT_MODE == "strict"
    assert s.budget_policy_path == DEV_POLICY_PATH and DEV_POLICY_PATH.is_file()
    assert load_settings({"APP_ENV": "staging"}).budget_policy_path == Path(
        "config/budget-policy.staging.json"
    )
    assert str(s.audit_log_path) == "data/audit.log"
    assert s.allowed_origins is None  # dev: *
    # No key: local Whisper (the dev extra installs it), tiny.en on one worker.
    assert (s.STT_PROVIDER, s.provider) == ("auto", "local")
    assert (s.LOCAL_WHISPER_MODEL, s.LOCAL_WHISPER_WORKERS) == ("tiny.en", 1)
    assert not s.simulated_upstream


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({"OPENAI_API_KEY": "k"}, "openai"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9000/v1"}, "openai"),
        ({}, "local"),
        ({"STT_PROVIDER": "simulated"}, "simulated"),
        ({"STT_PROVIDER": "LOCAL", "OPENAI_API_KEY": "k"}, "local"),
    ],
)
def test_provider_resolution(env: dict[str, str], provider: str) -> None:
    assert load_settings(env).provider == provider


def test_prod_may_run_local_whisper_without_an_api_key() -> None:
    prod = {
        "APP_ENV": "prod",
        "AUTH_JWT_SECRET": "x" * 32,
        "AUDIT_HMAC_KEY": "a" * 32,
        "REDIS_URL": "redis://r:6379/0",
        "ALLOWED_ORIGINS": "https://a.b",
    }
    assert load_settings({**prod, "STT_PROVIDER": "local"}).provider == "local"
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        load_settings({**prod, "STT_PROVIDER": "openai"})
    with pytest.raises(ConfigurationError, match="STT_PROVIDER"):
        load_settings({**prod, "STT_PROVIDER": "simulated"})


def test_interims_default_to_the_local_model_when_it_is_installed() -> None:
    s = load_settings({})
    assert (s.INTERIM_PROVIDER, s.interim_provider, s.INTERIM_MODEL) == ("auto", "local", "tiny.en")
    assert s.INTERIM_INTERVAL_SECONDS == 0.5
    assert load_settings({"INTERIM_PROVIDER": "OFF"}).interim_provider == "off"
    remote = load_settings({"INTERIM_PROVIDER": "openai", "INTERIM_BASE_URL": "http://gpu:9000/v1"})
    assert remote.interim_provider == "openai"


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        s.MAX_SESSIONS = 3  # type: ignore[misc]


def test_origins_parsing() -> None:
    s = load_settings({"ALLOWED_ORIGINS": "https://a.example, https://b.example/"})
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert load_settings({"APP_ENV": "staging"}).allowed_origins == ()


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"STT_WINDOW_SECONDS": "10", "STT_WINDOW_MAX_SECONDS": "5"}, "STT_WINDOW_MAX_SECONDS"),
        ({"APP_ENV": "prod"}, "AUTH_JWT_SECRET"),
        ({"APP_ENV": "prod", "AUTH_JWT_SECRET": "x" * 32}, "OPENAI_API_KEY"),
        ({"APP_ENV": "prod", "AUTH_JWT_SECRET": "x" * 32, "OPENAI_API_KEY": "k"}, "REDIS_URL"),
        (
            {
                "APP_ENV": "prod",
                "AUTH_JWT_SECRET": "x" * 32,
                "OPENAI_API_KEY": "k",
                "REDIS_URL": "redis://r",
            },
            "ALLOWED_ORIGINS",
        ),
        ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT"),
        ({"OPENAI_API_KEY": "sk-secret", "OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"),
        ({"INTERIM_PROVIDER": "openai"}, "INTERIM_BASE_URL"),
        ({"INTERIM_PROVIDER": "openai", "INTERIM_BASE_URL": "gpu:9000"}, "INTERIM_BASE_URL"),
        ({"INTERIM_PROVIDER": "sometimes"}, "INTERIM_PROVIDER"),
        ({"INTERIM_INTERVAL_SECONDS": "0"}, "INTERIM_INTERVAL_SECONDS"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(env)
    message = str(info.value)
    assert name in message and "\n" not in message
    assert "sk-secret" not in message


def test_prod_with_everything_set_loads() -> None:
    s = load_settings(
        {
            "APP_ENV": "prod",
            "AUTH_JWT_SECRET": "x" * 32,
            "OPENAI_API_KEY": "k",
            "REDIS_URL": "rediss://r:6380/0",
            "ALLOWED_ORIGINS": "https://a.b",
            "AUDIT_HMAC_KEY": "a" * 32,
        }
    )
    assert not s.simulated_upstream


def test_prod_lists_everything_it_lacks_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({"APP_ENV": "prod"})
    message = str(info.value)
    for name in ("AUTH_JWT_SECRET", "OPENAI_API_KEY", "REDIS_URL", "ALLOWED_ORIGINS"):
        assert name in message, message
    assert "AUDIT_HMAC_KEY" in message and "\n" not in message


def test_prod_refuses_the_example_secrets() -> None:
    """deploy/kubernetes/secret.example.yaml applied as it is would be a public secret."""
    import yaml

    example = yaml.safe_load(Path("deploy/kubernetes/secret.example.yaml").read_text())
    values = example["stringData"]
    env = {
        "APP_ENV": "prod",
        "AUTH_JWT_SECRET": values["AUTH_JWT_SECRET"],
        "AUDIT_HMAC_KEY": "a" * 32,
        "OPENAI_API_KEY": "k",
        "REDIS_URL": "redis://r:6379/0",
        "ALLOWED_ORIGINS": "https://a.b",
    }
    with pytest.raises(ConfigurationError, match="AUTH_JWT_SECRET is the example's placeholder"):
        load_settings(env)
    env["AUTH_JWT_SECRET"], env["AUDIT_HMAC_KEY"] = "x" * 32, values["AUDIT_HMAC_KEY"]
    with pytest.raises(ConfigurationError, match="AUDIT_HMAC_KEY is the example's placeholder"):
        load_settings(env)


def test_admission_bounds_follow_where_whisper_decodes() -> None:
    """A model in the process lifts the loop's lag by itself: its bounds are wider."""
    remote = {"OPENAI_API_KEY": "k", "INTERIM_PROVIDER": "off"}
    assert load_settings(remote).admission_lag_ms == (8.0, 3.0)
    assert load_settings({"STT_PROVIDER": "local"}).admission_lag_ms == (50.0, 15.0)
    assert load_settings({**remote, "INTERIM_PROVIDER": "local"}).admission_lag_ms == (50.0, 15.0)
    chosen = {**remote, "ADMISSION_LAG_MS": "20", "ADMISSION_REOPEN_LAG_MS": "30"}
    assert load_settings(chosen).admission_lag_ms == (20.0, 20.0)  # reopening never above
    assert load_settings({**remote, "ADMISSION_LAG_MS": "0"}).admission_lag_ms[0] == 0
