"""payq's settings: one class, read from ``PAYQ_*`` environment variables once, passed in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

NetworkName = Literal["bitcoin", "dogecoin", "ripple"]
ChainName = Literal["main", "test", "regtest"]
NETWORKS: tuple[NetworkName, ...] = ("bitcoin", "dogecoin", "ripple")

CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class RetryClassSettings(BaseModel):
    """One job class's entry in ``PAYQ_RETRY_CLASSES``; unset fields keep the class's own values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int | None = Field(None, ge=1)
    backoff_s: float | None = Field(None, ge=0)
    backoff_cap_s: float | None = Field(None, ge=0)
    timeout_s: float | None = Field(None, gt=0)


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """The settings of one network, gathered from the ``PAYQ_<NET>_*`` fields."""

    network: NetworkName
    chain: ChainName
    confirmations: int
    addresses: frozenset[str]
    job_class: str
    rpc_url: str | None

    @property
    def queue(self) -> str:
        return f"{self.network}:incoming"


class Settings(BaseSettings):
    """Every setting payq reads. Invalid values stop start-up with a line naming the setting."""

    model_config = SettingsConfigDict(env_prefix="PAYQ_", extra="ignore", frozen=True)

    redis_url: str | None = None
    redis_wait_replicas: int = Field(0, ge=0)
    redis_wait_timeout_ms: int = Field(1000, gt=0)
    namespace: str = Field("resque", min_length=1)

    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    admin_token: SecretStr | None = None
    dev_mode: bool = False

    jobs: CommaList = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    bitcoin_chain: ChainName = "main"
    bitcoin_confirmations: int = Field(1, ge=0)
    bitcoin_addresses: CommaList = Field(default_factory=list)
    bitcoin_job_class: str = Field("log", min_length=1)
    bitcoin_rpc_url: str | None = None
    bitcoin_rpc_cookie_file: str | None = None
    bitcoin_reversal_job_class: str = Field("log", min_length=1)

    dogecoin_chain: ChainName = "main"
    dogecoin_confirmations: int = Field(6, ge=0)
    dogecoin_addresses: CommaList = Field(default_factory=list)
    dogecoin_job_class: str = Field("log", min_length=1)
    dogecoin_rpc_url: str | None = None
    dogecoin_rpc_cookie_file: str | None = None
    dogecoin_reversal_job_class: str = Field("log", min_length=1)

    ripple_chain: ChainName = "main"
    # A validated ledger is final on the XRP Ledger, so one confirmation is the only meaningful value.
    ripple_confirmations: int = Field(1, ge=1, le=1)
    ripple_addresses: CommaList = Field(default_factory=list)
    ripple_job_class: str = Field("log", min_length=1)
    ripple_rpc_url: str | None = None
    ripple_ws_url: str | None = None

    max_body_bytes: int = Field(65536, gt=0)
    dedupe_retention_s: int = Field(90 * 24 * 3600, gt=0)
    delivery_retention_s: int = Field(3 * 24 * 3600, gt=0)
    signature_tolerance_s: int = Field(300, gt=0)

    heartbeat_interval_s: float = Field(5.0, gt=0)
    worker_timeout_s: float = Field(30.0, gt=0)
    shutdown_grace_s: float = Field(25.0, ge=0)
    poll_interval_s: float = Field(1.0, gt=0)
    poller_interval_s: float = Field(10.0, gt=0)

    # retries of jobs that declare no policy; PAYQ_RETRY_CLASSES (JSON) overrides per class, e.g.
    # {"credit_payment": {"attempts": 8, "backoff_s": 2, "timeout_s": 30}}
    retry_attempts: int = Field(5, ge=1)
    retry_backoff_s: float = Field(5.0, ge=0)
    retry_backoff_cap_s: float = Field(3600.0, ge=0)
    retry_classes: dict[str, RetryClassSettings] = Field(default_factory=dict)
    scheduler_interval_s: float = Field(5.0, gt=0)
    scheduler_lock_timeout_s: int = Field(180, gt=0)

    @field_validator("jobs", "bitcoin_addresses", "dogecoin_addresses", "ripple_addresses", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("bitcoin_addresses", "dogecoin_addresses", "ripple_addresses")
    @classmethod
    def _check_addresses(cls, addresses: list[str], info: ValidationInfo) -> list[str]:
        network = str(info.field_name).removesuffix("_addresses")
        chain = info.data.get(f"{network}_chain")
        if chain is None:
            return addresses  # the chain setting is invalid itself and is reported on its own
        return normalise_addresses(network, chain, addresses)

    @field_validator("webhook_secrets", "webhook_tokens", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        return _split(value.get_secret_value() if isinstance(value, SecretStr) else value)

    @field_validator("webhook_secrets")
    @classmethod
    def _check_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        from service.signatures import parse_secret

        for secret in secrets:
            parse_secret(secret.get_secret_value())
        return secrets

    @model_validator(mode="after")
    def _check_timeouts(self) -> Settings:
        if self.worker_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("PAYQ_WORKER_TIMEOUT_S must be longer than PAYQ_HEARTBEAT_INTERVAL_S")
        return self

    def network(self, name: NetworkName) -> NetworkSettings:
        return NetworkSettings(
            network=name,
            chain=getattr(self, f"{name}_chain"),
            confirmations=getattr(self, f"{name}_confirmations"),
            addresses=frozenset(getattr(self, f"{name}_addresses")),
            job_class=getattr(self, f"{name}_job_class"),
            rpc_url=getattr(self, f"{name}_rpc_url"),
        )

    def require_webhook_auth(self) -> None:
        """Refuse to serve webhooks that nobody can authenticate, except in development mode."""
        if not self.dev_mode and not self.webhook_secrets and not self.webhook_tokens:
            raise SettingsError(
                "PAYQ_WEBHOOK_SECRETS or PAYQ_WEBHOOK_TOKENS must be set (only payq dev accepts unsigned webhooks)"
            )

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise SettingsError("PAYQ_REDIS_URL is not set (payq dev starts its own Redis; other commands need one)")
        return self.redis_url


def normalise_addresses(network: str, chain: str, addresses: list[str]) -> list[str]:
    """Validate watched addresses for their network and chain, in the form payment bodies are matched in.

    Segwit addresses are lowercased; an XRP Ledger X-address becomes its classic account, since payq
    watches accounts and reads the destination tag from each payment.
    """
    from service.addresses import split_xrpl_address, validate_address
    from service.errors import InvalidPayment
    from service.networks import Chain, Network

    net, chain_ = Network(network), Chain(chain)
    normalised: list[str] = []
    for address in addresses:
        try:
            valid = validate_address(net, chain_, address)
            if net is Network.RIPPLE:
                valid, _tag = split_xrpl_address(valid, None)
        except InvalidPayment as exc:
            raise ValueError(f"{address!r} {exc.message}") from None
        if valid not in normalised:
            normalised.append(valid)
    return normalised


class SettingsError(ValueError):
    """A setting is missing or invalid."""


def describe_error(exc: Exception) -> str:
    """One line naming the offending setting, for start-up failures."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        # Only the field: an index into a comma-separated list is no setting name.
        loc = str(first["loc"][0]).upper() if first["loc"] else ""
        name = f"PAYQ_{loc}" if loc else "settings"
        return f"invalid setting {name}: {first['msg']}"
    return str(exc)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; tests pass their own instead."""
    return Settings()
