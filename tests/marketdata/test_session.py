"""Every error class of the client through httpx.MockTransport."""

import asyncio
import time

import httpcore
import httpx
import pytest
from pydantic import SecretStr

from periscope.errors import (
    InvalidInputError,
    MarketDataRejected,
    MarketDataUnavailable,
    PayloadError,
)
from periscope.marketdata import AsyncMassiveClient, CacheKind, ClientOptions
from periscope.marketdata.network import AsyncioTransport
from periscope.marketdata.payloads import ContractSnapshotResponse
from periscope.marketdata.session import ApiSession, _environment_proxy, for_model

OPTIONS = ClientOptions(
    max_retries=2, backoff_seconds=0.001, max_backoff_seconds=0.002, requests_per_second=None
)


def _item(ticker="O:SPY250117C00600000", strike=600.0):
    return {
        "details": {
            "contract_type": "call",
            "exercise_style": "american",
            "expiration_date": "2025-01-17",
            "shares_per_contract": 100,
            "strike_price": strike,
            "ticker": ticker,
        },
        "last_quote": {"bid": 1.0, "ask": 1.1, "bid_size": 5, "ask_size": 6, "last_updated": 1},
        "open_interest": 10,
        "underlying_asset": {"ticker": "SPY", "price": 600.0, "last_updated": 1},
        "brand_new_field": {"kept": True},
    }


def _page(items, next_url=None):
    body = {"status": "OK", "request_id": "r1", "results": items}
    if next_url:
        body["next_url"] = next_url
    return httpx.Response(200, json=body)


def _run(handler, call, options=OPTIONS):
    async def main():
        transport = httpx.MockTransport(handler)
        async with AsyncMassiveClient(
            api_key="secret", base_url="https://api.test", options=options, transport=transport
        ) as client:
            return await call(client)

    return asyncio.run(main())


def _chain(client):
    return client.fetch_chain("SPY")


def test_fetch_chain__follows_next_url_on_our_base_url_with_auth():
    seen = []

    def handler(request):
        seen.append(request)
        if "cursor" not in request.url.params:
            return _page(
                [_item()], "https://elsewhere.example:443/v3/snapshot/options/SPY?cursor=a"
            )
        return _page([_item("O:SPY250117C00601000", 601.0)])

    ds = _run(handler, _chain)
    assert ds.sizes["contract"] == 2
    assert [r.url.host for r in seen] == ["api.test", "api.test"]
    assert all(r.headers["authorization"] == "Bearer secret" for r in seen)
    assert all("secret" not in str(r.url) for r in seen)
    assert all(r.headers["user-agent"] == "periscope" for r in seen)
    # the client's timeouts travel with every request (the transport enforces them)
    assert all(
        r.extensions["timeout"] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}
        for r in seen
    )
    assert seen[0].url.params["limit"] == "250"
    assert dict(seen[1].url.params) == {"cursor": "a"}


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"status": "ERROR", "request_id": "q1", "error": "Unknown API Key"}, "Unknown API"),
        (403, {"status": "NOT_AUTHORIZED", "request_id": "q1", "message": "not entitled"}, "not"),
        (404, {"status": "NOT_FOUND", "request_id": "q1", "message": "no such"}, "no such"),
    ],
)
def test_get__4xx_is_rejected_with_message_and_request_id(status, body, message):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(status, json=body)

    with pytest.raises(MarketDataRejected, match=message) as info:
        _run(handler, _chain)
    assert info.value.context["status"] == status
    assert info.value.context["request_id"] == "q1"
    assert len(calls) == 1  # never retried


def test_get__429_honours_retry_after_then_succeeds():
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.05"}, json={"status": "ERROR"})
        return _page([_item()])

    ds = _run(handler, _chain)
    assert ds.sizes["contract"] == 1
    assert len(calls) == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, html="<html><center>nginx</center></html>"),
        httpx.Response(504, text="Gateway Time-out"),
        httpx.Response(429, json={"status": "ERROR", "error": "too many"}),
        httpx.Response(200, html="<html>maintenance</html>"),
        httpx.Response(200, text='{"status":"OK","results":[{"det'),
    ],
)
def test_get__transient_failures_are_retried_then_unavailable(response):
    calls = []

    def handler(request):
        calls.append(request)
        return response

    with pytest.raises(MarketDataUnavailable, match="gave up after 3 attempts") as info:
        _run(handler, _chain)
    assert len(calls) == 3
    assert info.value.context["page"] == 0


def test_get__timeouts_and_connection_errors_are_unavailable():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(MarketDataUnavailable, match="timeout"):
        _run(timeout, _chain)
    with pytest.raises(MarketDataUnavailable, match="connection error"):
        _run(refused, _chain)


def test_get__schema_break_is_payload_error_without_retry():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(200, json={"status": "OK", "request_id": "z", "results": {"a": 1}})

    with pytest.raises(PayloadError) as info:
        _run(handler, _chain)
    assert len(calls) == 1
    assert info.value.context["request_id"] == "z"


def test_get__contract_without_details_is_payload_error():
    def handler(request):
        return _page([{"open_interest": 3}])

    with pytest.raises(PayloadError):
        _run(handler, _chain)


def test_paginate__repeated_cursor_is_an_error():
    def handler(request):
        return _page([_item()], "https://api.test/v3/snapshot/options/SPY?cursor=same")

    with pytest.raises(PayloadError, match="repeated a cursor"):
        _run(handler, _chain)


def test_paginate__repeated_contract_is_an_error():
    def handler(request):
        cursor = request.url.params.get("cursor")
        nxt = None if cursor else "https://api.test/v3/snapshot/options/SPY?cursor=b"
        return _page([_item()], nxt)

    with pytest.raises(PayloadError, match="repeated a contract"):
        _run(handler, _chain)


def test_paginate__page_cap_is_an_error():
    def handler(request):
        n = int(request.url.params.get("cursor", "0")) + 1
        return _page([], f"https://api.test/v3/snapshot/options/SPY?cursor={n}")

    options = ClientOptions(max_pages=5, requests_per_second=None)
    with pytest.raises(PayloadError, match="more than 5 pages"):
        _run(handler, _chain, options)


def test_paginate__failure_on_a_later_page_fails_the_fetch():
    def handler(request):
        if request.url.params.get("cursor"):
            return httpx.Response(503, text="down")
        return _page([_item()], "https://api.test/v3/snapshot/options/SPY?cursor=2")

    with pytest.raises(MarketDataUnavailable) as info:
        _run(handler, _chain)
    assert info.value.context["page"] == 1


def test_payload__unknown_fields_are_kept():
    def handler(request):
        return httpx.Response(200, json={"status": "OK", "request_id": "x", "results": _item()})

    async def call(client):
        return await client.session.get(
            "/v3/snapshot/options/SPY/O:SPY250117C00600000",
            {},
            for_model(ContractSnapshotResponse),
            CacheKind.SNAPSHOT,
        )

    response = _run(handler, call)
    assert response.results.model_extra == {"brand_new_field": {"kept": True}}


def test_fetch_chain__filters_go_out_as_dotted_keys():
    seen = []

    def handler(request):
        seen.append(dict(request.url.params))
        return _page([])

    async def call(client):
        return await client.fetch_chain(
            "I:SPX", strike_price_gte=5000, expiration_date__lt="2025-02-01", contract_type="put"
        )

    ds = _run(handler, call)
    assert ds.sizes["contract"] == 0
    assert seen[0] == {
        "strike_price.gte": "5000",
        "expiration_date.lt": "2025-02-01",
        "contract_type": "put",
        "limit": "250",
    }


def test_client__rate_limit_spaces_requests():
    stamps = []

    def handler(request):
        stamps.append(time.monotonic())
        return httpx.Response(200, json={"status": "OK", "results": []})

    async def call(client):
        await asyncio.gather(*(client.fetch_dividends("KO") for _ in range(6)))

    _run(handler, call, ClientOptions(requests_per_second=20.0, burst=1.0))
    assert stamps[-1] - stamps[0] >= 5 / 20 * 0.9


def test_client__requires_a_key(monkeypatch):
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)

    with pytest.raises(InvalidInputError):
        AsyncMassiveClient()


def test_environment_proxy__scheme_then_all_and_no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert _environment_proxy("https://api.massive.com") is None
    monkeypatch.setenv("ALL_PROXY", "http://every.proxy:3128")
    assert _environment_proxy("https://api.massive.com") == "http://every.proxy:3128"
    monkeypatch.setenv("HTTPS_PROXY", "http://tls.proxy:3128")
    assert _environment_proxy("https://api.massive.com") == "http://tls.proxy:3128"
    assert _environment_proxy("http://api.massive.com") == "http://every.proxy:3128"
    monkeypatch.setenv("NO_PROXY", "massive.com,localhost")
    assert _environment_proxy("https://api.massive.com") is None
    assert _environment_proxy("https://other.example") == "http://tls.proxy:3128"
    monkeypatch.setenv("HTTPS_PROXY", "tls.proxy:3128")  # no scheme: as httpx, http:// is meant
    assert _environment_proxy("https://other.example") == "http://tls.proxy:3128"


def test_session__direct_lanes_use_the_asyncio_backend_proxied_ones_the_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    direct = ApiSession(SecretStr("k"), "https://api.massive.com")
    assert direct._lanes
    assert all(isinstance(lane, AsyncioTransport) for lane in direct._lanes)
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    proxied = ApiSession(SecretStr("k"), "https://api.massive.com")
    pools = [lane._pool for lane in proxied._lanes]
    assert pools
    assert all(isinstance(pool, httpcore.AsyncHTTPProxy) for pool in pools)
    assert all(pool._proxy_url.host == b"proxy.corp" for pool in pools)


@pytest.mark.parametrize("known_fields_only", [True, False])  # msgspec Structs / pydantic
def test_fetch_chain__times_beyond_int64_are_payload_errors(known_fields_only):
    item = _item()
    if known_fields_only:
        del item["brand_new_field"]
    item["last_quote"]["last_updated"] = 2**63
    with pytest.raises(PayloadError, match=r"last_quote\.last_updated out of range"):
        _run(lambda request: _page([item]), _chain)
