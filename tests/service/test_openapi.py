"""openapi/openapi.json is the app's own document; regenerate it with `payq openapi` when routes change."""

from __future__ import annotations

from pathlib import Path

import orjson

from service.cli import OPENAPI_PATH, openapi_document

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_json_matches_app() -> None:
    committed = (ROOT / OPENAPI_PATH).read_bytes()

    assert orjson.loads(committed) == orjson.loads(openapi_document()), "run `payq openapi` and commit the result"
    assert committed == openapi_document()


def test_openapi_document_describes_intake_answers() -> None:
    document = orjson.loads(openapi_document())
    operation = document["paths"]["/payments/{network}"]["post"]

    assert set(operation["responses"]) == {"202", "400", "401", "404", "413", "422", "503"}
    assert operation["requestBody"]["required"] is True
    network = next(p for p in operation["parameters"] if p["name"] == "network")
    assert network["schema"]["enum"] == ["bitcoin", "dogecoin", "ripple"]
    assert {"IntakeAnswer", "PaymentOutcome", "ErrorAnswer"} <= set(document["components"]["schemas"])
