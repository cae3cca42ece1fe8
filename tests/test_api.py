"""The read-back API: authentication, who sees what, and clear 4xx errors."""

from __future__ import annotations

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from tests.test_ingest_e2e import FIELD


@pytest.fixture(scope="module")
def people(platform):
    with psycopg.connect(platform.db_url) as conn:
        tokens = {name: add_user(conn, name=name, role=role, regions=regions).token
                  for name, role, regions in [
                      ("api-owner", "farmer", []), ("api-other", "farmer", []),
                      ("api-officer-h", "officer", ["Hirosaki"]),
                      ("api-officer-g", "officer", ["Goshogawara"]),
                      ("api-dev", "developer", [])]}
        data = orjson.loads(orjson.dumps(FIELD))
        data["features"][0]["properties"].update(id="api-field", owner="api-owner")
        import_fields(conn, parse_features(data))
    platform.add_device("api-paddy", field_id="api-field")
    platform.add_device("api-proto", owner="api-dev")
    return tokens


def _get(api, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(api + path, headers=headers, params=params)


def test_tokens_are_required(api, people):
    assert _get(api, "/api/v1/fields/api-field/conditions").status_code == 401
    r = _get(api, "/api/v1/fields/api-field/conditions", "not-a-token")
    assert r.status_code == 401 and "token" in r.json()["detail"]


def test_objects_of_others_are_missing_not_forbidden(api, people):
    path = "/api/v1/fields/api-field/conditions"
    assert _get(api, path, people["api-owner"]).status_code == 200
    assert _get(api, path, people["api-officer-h"]).status_code == 200
    for who in ("api-other", "api-officer-g", "api-dev"):
        r = _get(api, path, people[who])
        assert r.status_code == 404 and r.json() == {"detail": "no field 'api-field'"}
    series = "/api/v1/devices/api-proto/series"
    assert _get(api, series, people["api-dev"], metric="water_temp").status_code == 200
    assert _get(api, series, people["api-owner"], metric="water_temp").status_code == 404


def test_bad_requests_get_clear_4xx(api, people):
    token = people["api-owner"]
    path = "/api/v1/devices/api-paddy/series"
    cases = [
        ({}, "metric"),
        ({"metric": "air_temp"}, "choose one of"),
        ({"metric": "water_temp", "bucket": "7 weeks"}, "bucket must be"),
        ({"metric": "water_temp", "start": "2025-07-02T00:00:00+09:00",
          "end": "2025-07-01T00:00:00+09:00"}, "start must be before end"),
        ({"metric": "water_temp", "start": "2025-07-01T00:00:00"}, "UTC offset"),
        ({"metric": "water_temp", "start": "yesterday"}, "datetime"),
        ({"metric": "water_temp", "bucket": "1m", "start": "2000-01-01T00:00:00Z"},
         "buckets"),
    ]
    for params, words in cases:
        r = _get(api, path, token, **params)
        assert r.status_code == 422, (params, r.text)
        assert words in r.text, (params, r.text)


def test_rejects_are_for_developers_own_devices(api, people):
    assert _get(api, "/api/v1/rejects", people["api-owner"]).status_code == 403
    body = _get(api, "/api/v1/rejects", people["api-dev"]).json()
    assert all(item["device_id"] == "api-proto" for item in body["items"])


def test_openapi_and_metrics_are_served(api):
    spec = httpx.get(api + "/openapi.json").json()
    assert "/api/v1/devices/{device_id}/series" in spec["paths"]
    text = httpx.get(api + "/metrics").text
    assert "# TYPE agri_ingest_broker_dropped_messages gauge" in text
