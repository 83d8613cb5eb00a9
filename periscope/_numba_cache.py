"""numba's on-disk cache made safe for several processes and for edits anywhere in the package.

numba's own cache (``cache=True``) has two faults that matter to Periscope, where every Dask
worker process compiles the same kernels:

- Saving is a read-modify-write of the function's index file with no lock. Two processes that
  compile different signatures of one kernel at once both read an index of n entries, both
  store their code under data file n + 1 and both rewrite the index: the index can end up
  naming the other process's machine code for a signature (wrong code, a crash at best). Loads
  race too: the index is replaced before the data file is written, so a reader can follow a
  new index entry to an old data file. Here every save holds an exclusive ``flock`` on one lock
  file per cache directory, and every load a shared one.
- An entry is keyed on the source of the file defining the kernel only. Periscope's kernels
  inline helpers from other modules (``periscope.pricing._kernels.elementary``, ...) and call
  kernels defined elsewhere, so an edit there would leave stale machine code in use. Here the
  stamp adds a hash of every Python source file of the ``periscope`` package: any edit to the
  package invalidates every entry (they are rebuilt on first use).

Compiled code is also keyed by numba on the CPU name and features (see ``periscope._numba``),
so a cache copied to another machine kind is ignored rather than misused.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    IndexDataCacheFile,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
    UserWideCacheLocator,
)

PACKAGE_ROOT = Path(__file__).resolve().parent
LOCK_NAME = "periscope-numba.lock"


@functools.cache
def package_source_stamp(root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 over the relative paths and contents of every ``.py`` file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def cache_lock(directory: str, *, exclusive: bool) -> Iterator[None]:
    """Hold an advisory lock on ``directory``'s lock file (shared for readers)."""
    path = Path(directory) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class _PackageStamp:
    """Locator mixin: the stamp of the defining file (numba's) and of the whole package."""

    def get_source_stamp(self) -> tuple[Any, str]:
        # The defining file counts on its own for kernels outside the package (tests, notebooks).
        return super().get_source_stamp(), package_source_stamp()  # type: ignore[misc]


# The same places numba looks, in its order: NUMBA_CACHE_DIR when set, the source tree's
# __pycache__ when writable, else the user's cache directory.
class _UserProvidedLocator(_PackageStamp, UserProvidedCacheLocator):
    pass


class _InTreeLocator(_PackageStamp, InTreeCacheLocator):
    pass


class _UserWideLocator(_PackageStamp, UserWideCacheLocator):
    pass


class _LockedIndexDataCacheFile(IndexDataCacheFile):
    """numba's index + data files, read under a shared lock and written under an exclusive one."""

    def save(self, key: Any, data: Any) -> None:
        with cache_lock(self._cache_path, exclusive=True):
            super().save(key, data)  # type: ignore[no-untyped-call]

    def load(self, key: Any) -> Any:
        with cache_lock(self._cache_path, exclusive=False):
            return super().load(key)  # type: ignore[no-untyped-call]


class _PackageCacheImpl(CompileResultCacheImpl):
    _locator_classes = [  # noqa: RUF012 (numba reads this class attribute)
        _UserProvidedLocator,
        _InTreeLocator,
        _UserWideLocator,
    ]


class PackageFunctionCache(FunctionCache):
    """numba's per-function cache with the package-wide stamp and the cross-process lock."""

    _impl_class = _PackageCacheImpl

    def __init__(self, py_func: Any) -> None:
        super().__init__(py_func)  # type: ignore[no-untyped-call]
        self._cache_file = _LockedIndexDataCacheFile(  # type: ignore[no-untyped-call]
            cache_path=self._cache_path,
            filename_base=self._impl.filename_base,
            source_stamp=self._impl.locator.get_source_stamp(),
        )


def attach_cache(dispatcher: Any) -> bool:
    """Give a numba dispatcher the package cache; False when its function cannot be cached.

    Functions without a source file (typed in a REPL) or without a writable cache directory
    have no locator: they stay uncached, as numba's own ``cache=True`` would refuse them.
    """
    try:
        cache = PackageFunctionCache(dispatcher.py_func)
    except RuntimeError:
        return False
    # What numba's Dispatcher.enable_caching does, with this class instead of FunctionCache.
    dispatcher._cache = cache
    return True
