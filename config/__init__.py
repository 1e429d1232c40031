"""One typed settings object, read from the environment once at start-up.

Recollect's own variables are ``RECOLLECT_*``; MotorHead's names are honoured as aliases so
an existing MotorHead deployment's environment (docker-compose files, Helm values) keeps
working unchanged. A bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """The environment holds a value Recollect cannot start with."""


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,
    )

    # --- storage -----------------------------------------------------------------------
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    # Explicit socket timeouts: redis-py defaults to none, which turns a Redis outage into
    # hung request threads instead of a fast 503.
    redis_socket_timeout: float = Field(
        2.0, gt=0, le=60, validation_alias=_env("RECOLLECT_REDIS_SOCKET_TIMEOUT")
    )
    redis_connect_timeout: float = Field(
        0.5, gt=0, le=60, validation_alias=_env("RECOLLECT_REDIS_CONNECT_TIMEOUT")
    )
    redis_max_connections: int = Field(
        64, ge=4, le=10_000, validation_alias=_env("RECOLLECT_REDIS_MAX_CONNECTIONS")
    )
    key_prefix: str = Field(
        "rc", pattern=r"^[a-z][a-z0-9_]{0,15}$", validation_alias=_env("RECOLLECT_KEY_PREFIX")
    )

    # --- access ------------------------------------------------------------------------
    admin_token: SecretStr | None = Field(None, validation_alias=_env("RECOLLECT_ADMIN_TOKEN"))
    # api.md §9: tenant routes also under /k/<api_key>, for clients that send no header.
    path_keys: bool = Field(True, validation_alias=_env("RECOLLECT_PATH_KEYS"))
    open_tenant: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        validation_alias=_env("RECOLLECT_OPEN_TENANT"),
    )
    auth_cache_seconds: float = Field(
        1.0, ge=0, le=1.0, validation_alias=_env("RECOLLECT_AUTH_CACHE_SECONDS")
    )

    # --- window and summarization --------------------------------------------------------
    window_size: int = Field(
        12,
        ge=2,
        le=1000,
        validation_alias=_env("RECOLLECT_WINDOW_SIZE", "MOTORHEAD_MAX_WINDOW_SIZE"),
    )
    window_tokens: int | None = Field(
        None, ge=64, le=1_000_000, validation_alias=_env("RECOLLECT_WINDOW_TOKENS")
    )
    summarizer: Literal["auto", "openai", "extractive"] = Field(
        "auto", validation_alias=_env("RECOLLECT_SUMMARIZER")
    )
    summary_model: str = Field(
        "gpt-4o-mini",
        min_length=1,
        validation_alias=_env("RECOLLECT_SUMMARY_MODEL", "MOTORHEAD_MODEL"),
    )
    summary_max_tokens: int = Field(
        512, ge=16, le=16_384, validation_alias=_env("RECOLLECT_SUMMARY_MAX_TOKENS")
    )
    summary_context_tokens: int = Field(
        8192, ge=1024, le=2_000_000, validation_alias=_env("RECOLLECT_SUMMARY_CONTEXT_TOKENS")
    )
    summary_workers: int = Field(4, ge=1, le=256, validation_alias=_env("RECOLLECT_SUMMARY_WORKERS"))
    summary_retry_base_seconds: float = Field(
        2.0, gt=0, le=3600, validation_alias=_env("RECOLLECT_SUMMARY_RETRY_BASE_SECONDS")
    )
    summary_retry_max_seconds: float = Field(
        300.0, gt=0, le=86_400, validation_alias=_env("RECOLLECT_SUMMARY_RETRY_MAX_SECONDS")
    )
    sweep_interval_seconds: float = Field(
        1.0, gt=0, le=600, validation_alias=_env("RECOLLECT_SWEEP_INTERVAL_SECONDS")
    )
    budget_recheck_seconds: float = Field(
        60.0, gt=0, le=3600, validation_alias=_env("RECOLLECT_BUDGET_RECHECK_SECONDS")
    )

    # --- long-term memory ----------------------------------------------------------------
    long_term_memory: bool = Field(
        True, validation_alias=_env("RECOLLECT_LONG_TERM_MEMORY", "MOTORHEAD_LONG_TERM_MEMORY")
    )
    embedding_model: str | None = Field(
        None, min_length=1, max_length=200, validation_alias=_env("RECOLLECT_EMBEDDING_MODEL")
    )
    embedding_dimensions: int | None = Field(
        None, ge=2, le=8192, validation_alias=_env("RECOLLECT_EMBEDDING_DIMENSIONS")
    )
    index_workers: int = Field(2, ge=1, le=64, validation_alias=_env("RECOLLECT_INDEX_WORKERS"))
    index_sweep_interval_seconds: float = Field(
        0.25, gt=0, le=600, validation_alias=_env("RECOLLECT_INDEX_SWEEP_INTERVAL_SECONDS")
    )
    # "auto": vectors go in a RediSearch index when the server has the search module.
    redisearch: Literal["auto", "off"] = Field("auto", validation_alias=_env("RECOLLECT_REDISEARCH"))
    # Exact vector search reads every vector of the searched sessions into the worker.
    exact_vector_limit: int = Field(
        20_000, ge=100, le=1_000_000, validation_alias=_env("RECOLLECT_EXACT_VECTOR_LIMIT")
    )

    # --- LLM ---------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL", "OPENAI_API_BASE"))
    llm_timeout_seconds: float = Field(
        30.0, gt=0, le=600, validation_alias=_env("RECOLLECT_LLM_TIMEOUT_SECONDS")
    )
    llm_max_retries: int = Field(1, ge=0, le=10, validation_alias=_env("RECOLLECT_LLM_MAX_RETRIES"))
    azure_api_key: SecretStr | None = Field(None, validation_alias=_env("AZURE_API_KEY"))
    azure_api_base: str | None = Field(None, validation_alias=_env("AZURE_API_BASE"))
    azure_deployment_id: str | None = Field(None, validation_alias=_env("AZURE_DEPLOYMENT_ID"))
    azure_deployment_id_ada: str | None = Field(None, validation_alias=_env("AZURE_DEPLOYMENT_ID_ADA"))
    azure_api_version: str = Field("2024-06-01", validation_alias=_env("RECOLLECT_AZURE_API_VERSION"))

    # --- tenant policy defaults ----------------------------------------------------------
    rate_limits_enabled: bool = Field(True, validation_alias=_env("RECOLLECT_RATE_LIMITS_ENABLED"))
    rate_limit: str = Field(
        "1200/minute;60/second", min_length=1, validation_alias=_env("RECOLLECT_RATE_LIMIT")
    )
    session_ttl_seconds: int = Field(
        0, ge=0, le=10 * 365 * 86_400, validation_alias=_env("RECOLLECT_SESSION_TTL")
    )

    # --- request limits ----------------------------------------------------------------
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, validation_alias=_env("RECOLLECT_MAX_BODY_BYTES")
    )
    max_message_bytes: int = Field(
        64 * 1024, ge=64, le=16 * 1024 * 1024, validation_alias=_env("RECOLLECT_MAX_MESSAGE_BYTES")
    )
    # An import (POST /sessions/{id}/import) is a whole session's NDJSON export, read line by
    # line; it has its own, larger limit.
    import_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, le=1024**3, validation_alias=_env("RECOLLECT_IMPORT_MAX_BYTES")
    )
    max_messages_per_post: int = Field(
        100, ge=1, le=10_000, validation_alias=_env("RECOLLECT_MAX_MESSAGES_PER_POST")
    )

    # --- process -----------------------------------------------------------------------
    metrics: bool = Field(False, validation_alias=_env("RECOLLECT_METRICS"))
    port: int = Field(8080, ge=1, le=65535, validation_alias=_env("PORT"))
    # Proxies in front of the app that set X-Forwarded-* (1 behind nginx); 0 trusts none.
    proxy_count: int = Field(0, ge=0, le=5, validation_alias=_env("RECOLLECT_PROXY_COUNT"))
    log_format: Literal["json", "text"] = Field("json", validation_alias=_env("RECOLLECT_LOG_FORMAT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("RECOLLECT_LOG_LEVEL")
    )

    @field_validator("rate_limit")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        from app.domain.tenancy.policy import validate_rate_limit

        return validate_rate_limit(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def azure_configured(self) -> bool:
        """MotorHead switches to Azure only when all four of its variables are set."""
        return all(
            (
                self.azure_api_key,
                self.azure_api_base,
                self.azure_deployment_id,
                self.azure_deployment_id_ada,
            )
        )

    @property
    def embeddings_configured(self) -> bool:
        """Vector search is on: a model, and an endpoint to reach it."""
        if self.azure_configured and self.azure_deployment_id_ada:
            return True
        return self.embedding_model is not None and (
            self.openai_api_key is not None or self.openai_base_url is not None
        )

    @property
    def effective_summarizer(self) -> Literal["openai", "extractive"]:
        if self.summarizer != "auto":
            return self.summarizer
        return "openai" if (self.openai_api_key or self.azure_configured) else "extractive"


def _env_name(field: str) -> str:
    """The variable the operator actually set for ``field`` (an alias if that is the one)."""
    import os

    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        names = [str(choice) for choice in alias.choices]
        return next((name for name in names if os.environ.get(name)), names[0])
    return field.upper()


_FIELD_BY_ALIAS = {
    str(alias): name
    for name, info in Settings.model_fields.items()
    if isinstance(info.validation_alias, AliasChoices)
    for alias in info.validation_alias.choices
}


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) into a validated ``Settings``.

    Raises ``ConfigError`` with one line naming the offending variable; secrets are never
    echoed back.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        field = _FIELD_BY_ALIAS.get(field, field)  # pydantic reports an alias, not the field
        name = _env_name(field) if field in Settings.model_fields else field
        secret = "KEY" in name or "TOKEN" in name
        got = "" if secret else f" (got {first.get('input')!r})"
        raise ConfigError(f"invalid configuration: {name}: {first['msg']}{got}") from None
