import multiprocessing
import time

from periscope.marketdata import (
    CacheKind,
    CacheOptions,
    ClientOptions,
    MassiveClient,
    ResponseCache,
)
from periscope.marketdata.cache import cache_key

# This module must stay light to import: the cache workers below import it in each process.
FAST = ClientOptions(requests_per_second=None, read_timeout=5.0)


def _worker(directory, worker, rounds):
    cache = ResponseCache(CacheOptions(directory, max_bytes=200_000))
    for i in range(rounds):
        key = cache_key("/shared", {"i": str(i % 50)})
        body = cache.get(key)
        assert body is None or body == f"body-{i % 50}".encode() * 100
        cache.put(key, f"body-{i % 50}".encode() * 100, CacheKind.REFERENCE)
        own = cache_key("/own", {"w": str(worker), "i": str(i)})
        cache.put(own, b"x" * 1000, CacheKind.HISTORY)
    return worker


def test_response_cache__concurrent_processes_share_it_safely(tmp_path):
    # forkserver: a fresh single-threaded server process imports periscope once, then forks
    # the workers (spawn would pay the imports in every worker; fork would copy our threads).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["periscope.marketdata"])
    with context.Pool(3) as pool:
        done = pool.starmap(_worker, [(tmp_path, w, 150) for w in range(3)])
    assert sorted(done) == [0, 1, 2]
    cache = ResponseCache(CacheOptions(tmp_path, max_bytes=200_000))
    assert cache.size_bytes() <= 200_000
    fresh = [cache.get(cache_key("/shared", {"i": str(i)})) for i in range(50)]
    assert all(body is None or body == f"body-{i}".encode() * 100 for i, body in enumerate(fresh))


def test_response_cache__ttl_per_kind(tmp_path):
    cache = ResponseCache(
        CacheOptions(tmp_path, ttl_seconds={CacheKind.SNAPSHOT: 0.05, CacheKind.HISTORY: 60})
    )
    cache.put("a", b"snap", CacheKind.SNAPSHOT)
    cache.put("b", b"hist", CacheKind.HISTORY)
    assert cache.get("a") == b"snap"
    time.sleep(0.1)
    assert cache.get("a") is None
    assert cache.get("b") == b"hist"


def test_response_cache__bounded_lru(tmp_path):
    cache = ResponseCache(CacheOptions(tmp_path, max_bytes=10_000))
    for i in range(30):
        cache.put(str(i), b"y" * 1000, CacheKind.REFERENCE)
        cache.get("0")  # keep the first one hot
    assert cache.size_bytes() <= 10_000
    assert cache.get("0") is not None
    assert cache.get("1") is None


def test_cache_key__ignores_api_key_and_parameter_order():
    assert cache_key("/p", {"a": "1", "b": "2"}) == cache_key(
        "/p", {"b": "2", "apiKey": "s", "a": "1"}
    )


def test_fetch_chain__cache_hits_do_not_touch_the_network(server, simulator, tmp_path):
    cache = ResponseCache(CacheOptions(tmp_path))
    with MassiveClient(
        api_key=server.api_key, base_url=server.base_url, options=FAST, cache=cache
    ) as client:
        first = client.fetch_chain("QQQ")
        sent = client.session.requests_sent
        count = simulator.request_count
        second = client.fetch_chain("QQQ")
        assert client.session.requests_sent == sent
        assert simulator.request_count == count
    assert first.sizes == second.sizes
