import socket
import subprocess
import sys
import time

import httpx
import pytest

from periscope.simulator import Market, SimulationConfig, Simulator, SimulatorServer


def test_server__auth_by_bearer_or_api_key_query(server):
    url = f"{server.base_url}/v3/snapshot/options/SPY"
    assert httpx.get(url, headers={"Authorization": "Bearer k1"}).status_code == 200
    assert httpx.get(url, params={"apiKey": "k1"}).status_code == 200
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"] == "API Key was not provided"
    assert missing.json()["request_id"]
    assert httpx.get(url, params={"apiKey": "nope"}).json()["error"] == "Unknown API Key"


def test_server__pagination_carries_filters_and_never_repeats(server):
    url, tickers, pages = "/v3/snapshot/options/SPY?limit=100&contract_type=call", [], 0
    headers = {"Authorization": "Bearer k1"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        while url:
            body = client.get(url).json()
            assert "k1" not in body.get("next_url", "")
            tickers += [r["details"]["ticker"] for r in body["results"]]
            assert all(r["details"]["contract_type"] == "call" for r in body["results"])
            url, pages = body.get("next_url"), pages + 1
    truth = server.simulator.market.chain("SPY")
    assert len(tickers) == len(set(tickers)) == int((truth.columns["right"] == "call").sum())
    assert pages == -(-len(tickers) // 100)


def test_server__page_limits_are_clamped(server):
    body = httpx.get(
        f"{server.base_url}/v3/snapshot/options/I:SPX", params={"limit": 5000, "apiKey": "k1"}
    ).json()
    assert len(body["results"]) == 250


def test_server__rate_limit_answers_429_with_retry_after():
    market = Market(SimulationConfig(n_underlyings=1, n_days=5))
    with SimulatorServer(Simulator(market, api_key="k", rate_limit=2.0)) as server:
        url = f"{server.base_url}/v3/snapshot/indices"
        answers = [
            httpx.get(url, params={"ticker.any_of": "I:SPX", "apiKey": "k"}) for _ in range(6)
        ]
    limited = [a for a in answers if a.status_code == 429]
    assert limited
    assert limited[0].headers["Retry-After"] == "1"
    assert "exceeded the maximum requests" in limited[0].json()["error"]


def test_server__future_dates_are_not_authorized(server):
    response = httpx.get(
        f"{server.base_url}/v2/aggs/ticker/SPY/range/1/day/2030-01-01/2030-02-01",
        params={"apiKey": "k1"},
    )
    assert response.status_code == 403
    assert response.json()["status"] == "NOT_AUTHORIZED"


@pytest.mark.slow
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_main__prints_base_url_and_key_first():
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "periscope.simulator",
        "serve",
        "--port",
        str(port),
        "--underlyings",
        "2",
        "--days",
        "5",
        "--api-key",
        "cli-key",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        base_url, key = process.stdout.readline().split()
        assert base_url == f"http://127.0.0.1:{port}"  # the port asked for, not a free one
        assert key == "cli-key"
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(f"{base_url}/v3/snapshot/options/SPY", params={"apiKey": key})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 200
        process.terminate()
