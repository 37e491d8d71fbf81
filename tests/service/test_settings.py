"""Settings: defaults, lists from the environment, watched addresses checked per network, one-line errors."""

from __future__ import annotations

import os

import pytest

from service import cli
from service.settings import Settings, describe_error
from tests.service.intake_client import DOGE_ADDRESS, SECRET, TAPROOT

MAIN_SEGWIT = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
X_ADDRESS = "XVLhHMPHU98es4dbozjVtdWzVrDjtV18pX8yuPT7y4xaEHi"  # rGWrZyQqhTp9Xu7G5Pkayo7bXjH4k4QYpf, tag 4294967295


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PAYQ_"):
            monkeypatch.delenv(name)


def test_settings_default_to_design_values() -> None:
    settings = Settings()

    assert (settings.namespace, settings.max_body_bytes, settings.redis_wait_replicas) == ("resque", 65536, 0)
    assert [settings.network(n).confirmations for n in ("bitcoin", "dogecoin", "ripple")] == [1, 6, 1]
    assert {settings.network(n).job_class for n in ("bitcoin", "dogecoin", "ripple")} == {"log"}
    assert settings.network("dogecoin").queue == "dogecoin:incoming"
    assert settings.webhook_secrets == [] and settings.webhook_tokens == []


def test_settings_read_lists_and_normalise_watched_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_WEBHOOK_SECRETS", f"{SECRET}, {SECRET}")
    monkeypatch.setenv("PAYQ_WEBHOOK_TOKENS", "one,two")
    monkeypatch.setenv("PAYQ_BITCOIN_ADDRESSES", f"{MAIN_SEGWIT.upper()}, {TAPROOT}, {MAIN_SEGWIT}")
    monkeypatch.setenv("PAYQ_DOGECOIN_ADDRESSES", DOGE_ADDRESS)
    monkeypatch.setenv("PAYQ_RIPPLE_ADDRESSES", X_ADDRESS)
    monkeypatch.setenv("PAYQ_DOGECOIN_CONFIRMATIONS", "10")
    monkeypatch.setenv("PAYQ_RIPPLE_JOB_CLASS", "CreditXrp")

    settings = Settings()

    assert len(settings.webhook_secrets) == 2
    assert [t.get_secret_value() for t in settings.webhook_tokens] == ["one", "two"]
    assert settings.network("bitcoin").addresses == frozenset({MAIN_SEGWIT, TAPROOT})
    assert settings.network("dogecoin").addresses == frozenset({DOGE_ADDRESS})
    assert settings.network("ripple").addresses == frozenset({"rGWrZyQqhTp9Xu7G5Pkayo7bXjH4k4QYpf"})
    assert settings.network("dogecoin").confirmations == 10
    assert settings.network("ripple").job_class == "CreditXrp"


def test_settings_check_watched_addresses_against_the_configured_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_BITCOIN_CHAIN", "test")
    monkeypatch.setenv("PAYQ_BITCOIN_ADDRESSES", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx")

    assert Settings().network("bitcoin").addresses == frozenset({"tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PAYQ_BITCOIN_ADDRESSES", DOGE_ADDRESS, "invalid setting PAYQ_BITCOIN_ADDRESSES:"),
        ("PAYQ_BITCOIN_ADDRESSES", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "another chain"),
        ("PAYQ_DOGECOIN_ADDRESSES", MAIN_SEGWIT, "invalid setting PAYQ_DOGECOIN_ADDRESSES:"),
        ("PAYQ_RIPPLE_ADDRESSES", "rNotAnAccount", "invalid setting PAYQ_RIPPLE_ADDRESSES:"),
        ("PAYQ_RIPPLE_CONFIRMATIONS", "2", "invalid setting PAYQ_RIPPLE_CONFIRMATIONS:"),
        ("PAYQ_BITCOIN_CONFIRMATIONS", "-1", "invalid setting PAYQ_BITCOIN_CONFIRMATIONS:"),
        ("PAYQ_MAX_BODY_BYTES", "0", "invalid setting PAYQ_MAX_BODY_BYTES:"),
        ("PAYQ_WEBHOOK_SECRETS", f"{SECRET},whsec_c2hvcnQ=", "invalid setting PAYQ_WEBHOOK_SECRETS:"),
    ],
)
def test_payq_refuses_to_start_with_one_line_naming_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)

    assert cli.main(["openapi", "--output", os.devnull]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    assert SECRET not in err and "c2hvcnQ" not in err


def test_describe_error_names_list_setting_not_its_index() -> None:
    with pytest.raises(ValueError) as caught:
        Settings(webhook_secrets="whsec_c2hvcnQ=")  # type: ignore[arg-type]

    assert describe_error(caught.value).startswith("invalid setting PAYQ_WEBHOOK_SECRETS: ")


def test_payq_api_refuses_to_start_without_secret_or_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAYQ_REDIS_URL", "redis://127.0.0.1:1/0")

    assert cli.main(["api"]) == 2
    assert "PAYQ_WEBHOOK_SECRETS or PAYQ_WEBHOOK_TOKENS must be set" in capsys.readouterr().err


def test_require_webhook_auth_passes_in_development_mode_or_with_a_token() -> None:
    Settings(dev_mode=True).require_webhook_auth()
    Settings(webhook_tokens="t").require_webhook_auth()  # type: ignore[arg-type]
