"""One frozen settings object, read once from the environment.

Every configuration variable (the README's table) has a field here with the
same name. :func:`load_settings` fails fast with one line naming the
variable that is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.errors import ConfigurationError
from gateway.redis.connection import parse_sentinel_url
from gateway.settings_checks import FieldProblem, prod_problems
from gateway.stt.local_transcriber import available as local_available

AppEnv = Literal["dev", "staging", "prod"]
EnforcementMode = Literal["strict", "advisory", "disabled"]
Provider = Literal["openai", "local", "simulated"]
ProviderSetting = Literal["auto", "openai", "local", "simulated"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
#: The dev policy, shipped in the package (in the source tree: config/budget-policy.dev.json).
DEV_POLICY_PATH = Path(__file__).parent / "budget" / "budget-policy.dev.json"


class Settings(BaseSettings):
    """Gateway configuration. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=True, extra="ignore", allow_inf_nan=False
    )

    APP_ENV: AppEnv = "dev"
    GATEWAY_HOST: str = "127.0.0.1"
    GATEWAY_PORT: int = Field(8080, ge=0, le=65535)

    STT_PROVIDER: ProviderSetting = "auto"
    OPENAI_API_KEY: str | None = None
    OPENAI_BASE_URL: str | None = None
    UPSTREAM_CLIENT: Literal["aiohttp", "openai-sdk"] = "aiohttp"
    LOCAL_WHISPER_MODEL: str = Field("tiny.en", min_length=1)
    LOCAL_WHISPER_DEVICE: Literal["auto", "cpu", "cuda"] = "auto"
    LOCAL_WHISPER_COMPUTE_TYPE: str = Field("auto", min_length=1)
    LOCAL_WHISPER_WORKERS: int = Field(1, ge=1, le=64)
    STT_MODEL: str = "whisper-1"
    INTERIM_PROVIDER: Literal["auto", "local", "openai", "off"] = "auto"
    INTERIM_MODEL: str = Field("tiny.en", min_length=1)
    INTERIM_BASE_URL: str | None = None
    INTERIM_API_KEY: str | None = None
    INTERIM_INTERVAL_SECONDS: float = Field(0.5, ge=0.1, le=10)
    STT_WINDOW_SECONDS: float = Field(5.0, ge=0.5, le=60)
    STT_WINDOW_MAX_SECONDS: float = Field(15.0, ge=0.5, le=120)
    STT_MAX_CONCURRENCY: int = Field(32, ge=1, le=10_000)
    STT_MAX_RETRIES: int = Field(3, ge=0, le=20)
    STT_REQUEST_TIMEOUT_SECONDS: float = Field(30.0, gt=0, le=600)
    STT_MAX_IN_FLIGHT_PER_SESSION: int = Field(3, ge=1, le=32)
    STT_PROMPT_CONTINUITY: bool = False
    STT_SHORTEN_PAUSES: bool = True
    BREAKER_FAIL_MAX: int = Field(5, ge=1, le=1000)
    BREAKER_RESET_SECONDS: float = Field(30.0, gt=0, le=3600)
    OPENAI_RPM_LIMIT: int | None = Field(None, ge=1)

    REDIS_URL: str | None = None
    REDIS_MODE: Literal["standalone", "cluster", "sentinel"] = "standalone"
    REDIS_SENTINEL_MASTER: str = Field("mymaster", min_length=1)
    BUDGET_ENFORCEMENT_MODE: EnforcementMode = "strict"
    BUDGET_POLICY_PATH: str | None = None
    BUDGET_LEASE_SECONDS: float = Field(600.0, gt=0, le=86400)

    AUTH_JWT_SECRET: str | None = None
    ALLOWED_ORIGINS: str | None = None
    PUBLIC_BASE_URL: str | None = None
    AUTH_FAILURES_PER_MINUTE: int = Field(30, ge=1, le=1_000_000)
    HTTP_KEEPALIVE_SECONDS: float = Field(15.0, gt=0, le=3600)
    HTTP_BODY_TIMEOUT_SECONDS: float = Field(30.0, gt=0, le=3600)
    TOKEN_MAX_TTL_SECONDS: int = Field(86400, ge=60, le=366 * 86400)
    LINK_CODE_TTL_SECONDS: int = Field(600, ge=10, le=86400)
    AUDIT_HMAC_KEY: str | None = None

    MAX_SESSIONS: int = Field(2000, ge=1)
    #: Event-loop lag (smoothed) at which the process is saturated (0: never), and at or
    #: under which it reopens after ADMISSION_HOLD_SECONDS (None: see admission_lag_ms).
    ADMISSION_LAG_MS: float | None = Field(None, ge=0, le=60_000)
    ADMISSION_REOPEN_LAG_MS: float | None = Field(None, ge=0, le=60_000)
    ADMISSION_HOLD_SECONDS: float = Field(5.0, ge=0, le=3600)
    IDLE_TIMEOUT_SECONDS: float = Field(30.0, gt=0)
    MAX_PENDING_AUDIO_SECONDS: float = Field(60.0, gt=0)
    RESUME_SECONDS: int = Field(30, ge=0, le=3600)
    MAX_FRAME_BYTES: int = Field(65536, ge=2, le=16 * 1024 * 1024)
    SHUTDOWN_GRACE_SECONDS: float = Field(30.0, ge=0)
    READY_REQUIRES_WHISPER: bool = False
    METRICS_MAX_SCHOOLS: int = Field(500, ge=0)
    VAD_THRESHOLD_DBFS: float = Field(-50.0, ge=-120, le=0)

    OTEL_TRACING_ENABLED: bool = False
    OTEL_SERVICE_NAME: str = "stt-gateway"

    DATA_DIR: str = "./data"
    AUDIT_LOG_PATH: str | None = None
    LOG_LEVEL: Literal["debug", "info", "warning", "error", "critical"] = "info"
    LOG_FORMAT: Literal["json", "console"] = "json"

    @field_validator(
        "LOG_LEVEL",
        "LOG_FORMAT",
        "APP_ENV",
        "BUDGET_ENFORCEMENT_MODE",
        "STT_PROVIDER",
        "UPSTREAM_CLIENT",
        "REDIS_MODE",
        "LOCAL_WHISPER_DEVICE",
        "INTERIM_PROVIDER",
        mode="before",
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "REDIS_URL",
        "AUTH_JWT_SECRET",
        "AUDIT_HMAC_KEY",
        "ALLOWED_ORIGINS",
        "PUBLIC_BASE_URL",
        "BUDGET_POLICY_PATH",
        "AUDIT_LOG_PATH",
        "INTERIM_BASE_URL",
        "INTERIM_API_KEY",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("OPENAI_BASE_URL", "INTERIM_BASE_URL")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.STT_PROVIDER == "local" and not local_available():
            raise FieldProblem(
                "STT_PROVIDER", "local needs the local extra: pip install 'stt-gateway[local]'"
            )
        if self.INTERIM_PROVIDER == "local" and not local_available():
            raise FieldProblem(
                "INTERIM_PROVIDER", "local needs the local extra: pip install 'stt-gateway[local]'"
            )
        if self.INTERIM_PROVIDER == "openai" and self.INTERIM_BASE_URL is None:
            raise FieldProblem("INTERIM_BASE_URL", "must be set with INTERIM_PROVIDER=openai")
        if self.STT_WINDOW_MAX_SECONDS < self.STT_WINDOW_SECONDS:
            raise FieldProblem("STT_WINDOW_MAX_SECONDS", "must be ≥ STT_WINDOW_SECONDS")
        if self.REDIS_MODE != "standalone":
            if self.REDIS_URL is None:
                raise FieldProblem("REDIS_URL", f"must be set with REDIS_MODE={self.REDIS_MODE}")
            if self.REDIS_URL.startswith("unix://"):
                raise FieldProblem("REDIS_URL", f"REDIS_MODE={self.REDIS_MODE} needs host:port")
        if self.REDIS_MODE == "sentinel" and self.REDIS_URL is not None:
            try:
                parse_sentinel_url(self.REDIS_URL)
            except ValueError as exc:
                raise FieldProblem("REDIS_URL", str(exc)) from None
        if self.APP_ENV == "prod":
            problems = prod_problems(self)
            if len(problems) == 1:
                raise problems[0]
            if problems:
                needs = "; ".join(f"{p.field} {p.problem}" for p in problems)
                raise FieldProblem("APP_ENV=prod", f"needs {len(problems)} changes: {needs}")
        return self

    # Derived values -------------------------------------------------------

    @property
    def provider(self) -> Provider:
        """``STT_PROVIDER``, with ``auto`` resolved: ``openai`` when an API key or an upstream
        URL is set, else ``local`` when its extra is installed, else ``simulated``."""
        if self.STT_PROVIDER != "auto":
            return self.STT_PROVIDER
        if self.OPENAI_API_KEY is not None or self.OPENAI_BASE_URL is not None:
            return "openai"
        return "local" if local_available() else "simulated"

    @property
    def interim_provider(self) -> str:
        """``INTERIM_PROVIDER``, with ``auto`` resolved: ``local`` when its extra is
        installed, else ``off``."""
        if self.INTERIM_PROVIDER != "auto":
            return self.INTERIM_PROVIDER
        return "local" if local_available() else "off"

    @property
    def admission_lag_ms(self) -> tuple[float, float]:
        """The lag that closes admission and the lag that reopens it: 8 / 3 ms, or 50 / 15
        with a Whisper model decoding in this process (its decodes hold the interpreter, so
        the lag measures the model as much as the streams: docs/Scaling.md)."""
        local = "local" in (self.provider, self.interim_provider)
        enter, reopen = self.ADMISSION_LAG_MS, self.ADMISSION_REOPEN_LAG_MS
        enter = (50.0 if local else 8.0) if enter is None else enter
        return enter, min(enter, (15.0 if local else 3.0) if reopen is None else reopen)

    @property
    def simulated_upstream(self) -> bool:
        return self.provider == "simulated"

    @property
    def default_model(self) -> str:
        """The model windows use and are billed under unless a client asks for another:
        the local model's name with ``local``, else ``STT_MODEL``."""
        return self.LOCAL_WHISPER_MODEL if self.provider == "local" else self.STT_MODEL

    @property
    def upstream_model_label(self) -> str:
        """The model that shows next to the provider (readiness, info metric, start-up log)."""
        return self.LOCAL_WHISPER_MODEL if self.provider == "local" else self.STT_MODEL

    @property
    def upstream_url(self) -> str:
        return self.OPENAI_BASE_URL or DEFAULT_OPENAI_BASE_URL

    @property
    def public_base_url(self) -> str:
        """Where browsers reach the gateway, for the links it prints (``PUBLIC_BASE_URL``)."""
        if self.PUBLIC_BASE_URL:
            return self.PUBLIC_BASE_URL.rstrip("/")
        return f"http://{self.GATEWAY_HOST}:{self.GATEWAY_PORT}"

    @property
    def allowed_origins(self) -> tuple[str, ...] | None:
        """Allowed browser origins; ``None`` means any (dev default ``*``)."""
        raw = self.ALLOWED_ORIGINS
        if raw is None:
            return None if self.APP_ENV == "dev" else ()
        items = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
        return None if "*" in items else items

    @property
    def data_dir(self) -> Path:
        return Path(self.DATA_DIR)

    @property
    def audit_log_path(self) -> Path:
        return Path(self.AUDIT_LOG_PATH) if self.AUDIT_LOG_PATH else self.data_dir / "audit.log"

    @property
    def budget_policy_path(self) -> Path:
        """``BUDGET_POLICY_PATH``; unset: in dev the policy shipped in the package (so an
        installed gateway starts anywhere), else ``config/budget-policy.<APP_ENV>.json``."""
        if self.BUDGET_POLICY_PATH:
            return Path(self.BUDGET_POLICY_PATH)
        if self.APP_ENV == "dev":
            return DEV_POLICY_PATH
        return Path(f"config/budget-policy.{self.APP_ENV}.json")


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from ``environ`` (default: the process environment).

    Raises :class:`ConfigurationError` with one line naming the bad variable.
    """
    try:
        if environ is None:
            return Settings(**overrides)  # type: ignore[arg-type]
        known = {k: v for k, v in environ.items() if k in Settings.model_fields}
        return Settings.model_validate({**known, **overrides})
    except ValidationError as exc:
        raise ConfigurationError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    ctx = first.get("ctx") or {}
    inner = ctx.get("error")
    if isinstance(inner, FieldProblem):
        return f"invalid configuration: {inner.field} {inner.problem}"
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    value = first.get("input")
    shown = (
        "" if isinstance(value, dict) or "SECRET" in loc or "KEY" in loc else f" (got {value!r})"
    )
    return f"invalid configuration: {loc}: {message}{shown}"
