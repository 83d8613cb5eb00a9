"""An on-disk response cache shared by processes: SQLite in WAL mode, TTL per kind, bounded.

Why not hishel: it implements HTTP caching semantics (``Cache-Control``, validators), while
Massive sends no caching headers and what we need is a freshness policy per kind of data
(snapshots seconds, reference data a day, closed history a week) decided by the client. SQLite
(standard library) gives atomic writes and safe concurrent access from several Dask worker
processes (WAL journal, busy timeout) in one file, with no extra dependency.

Keys are a SHA-256 of the request path and sorted query parameters (never the API key); values
are the raw response bodies of successful, validated responses.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class CacheKind(enum.Enum):
    """What a response holds, which decides how long it stays fresh."""

    SNAPSHOT = "snapshot"
    REFERENCE = "reference"
    HISTORY = "history"
    RATES = "rates"


DEFAULT_TTL_SECONDS: Mapping[CacheKind, float] = {
    CacheKind.SNAPSHOT: 15.0,
    CacheKind.REFERENCE: 24 * 3600.0,
    CacheKind.HISTORY: 7 * 24 * 3600.0,
    CacheKind.RATES: 6 * 3600.0,
}
DEFAULT_MAX_BYTES = 512 * 1024**2


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """Where the cache lives, how long entries stay fresh, and its size bound."""

    directory: Path
    ttl_seconds: Mapping[CacheKind, float] | None = None
    max_bytes: int = DEFAULT_MAX_BYTES


def cache_key(path: str, params: Mapping[str, str]) -> str:
    """The key of a request: SHA-256 of its path and sorted query (auth never included)."""
    query = "&".join(f"{k}={params[k]}" for k in sorted(params) if k.lower() != "apikey")
    return hashlib.sha256(f"{path}?{query}".encode()).hexdigest()


class ResponseCache:
    """The on-disk cache; one instance per process (connections are per thread).

    Parameters
    ----------
    options
        Directory (created if needed), TTLs per :class:`CacheKind`, and ``max_bytes``: when the
        stored bodies exceed it, the least recently used entries are evicted down to 90 %.
    """

    def __init__(self, options: CacheOptions) -> None:
        self.options = options
        self.ttl = {**DEFAULT_TTL_SECONDS, **(options.ttl_seconds or {})}
        options.directory.mkdir(parents=True, exist_ok=True)
        self.path = options.directory / "responses.sqlite"
        self._local = threading.local()
        with self._connection() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body BLOB NOT NULL,"
                " expires REAL NOT NULL, used REAL NOT NULL, size INTEGER NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS responses_used ON responses (used)")

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def get(self, key: str) -> bytes | None:
        """The fresh body stored under ``key``, or None."""
        now = time.time()
        db = self._connection()
        row = db.execute("SELECT body, expires FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None or row[1] < now:
            return None
        db.execute("UPDATE responses SET used = ? WHERE key = ?", (now, key))
        return bytes(row[0])

    def put(self, key: str, body: bytes, kind: CacheKind) -> None:
        """Store ``body`` under ``key`` for the TTL of ``kind``; evict if over the bound."""
        ttl = self.ttl[kind]
        if ttl <= 0:
            return
        now = time.time()
        db = self._connection()
        db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
            (key, body, now + ttl, now, len(body)),
        )
        self._evict(db)

    def _evict(self, db: sqlite3.Connection) -> None:
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()[0]
        if total <= self.options.max_bytes:
            return
        target = int(self.options.max_bytes * 0.9)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM responses WHERE expires < ?", (time.time(),))
            rows = db.execute("SELECT key, size FROM responses ORDER BY used DESC").fetchall()
            kept, doomed = 0, []
            for key, size in rows:
                kept += size
                if kept > target:
                    doomed.append((key,))
            db.executemany("DELETE FROM responses WHERE key = ?", doomed)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        logger.debug("response cache evicted %d entries", len(doomed))

    def size_bytes(self) -> int:
        """Total size of the stored bodies."""
        row = self._connection().execute("SELECT COALESCE(SUM(size), 0) FROM responses")
        return int(row.fetchone()[0])

    def clear(self) -> None:
        """Remove every entry."""
        self._connection().execute("DELETE FROM responses")
