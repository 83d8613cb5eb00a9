"""The on-disk kernel cache: safe under concurrent processes, invalidated by any package edit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from periscope._numba_cache import cache_lock, package_source_stamp

# A kernel module outside the package, compiled through Periscope's `kernel` policy. Each
# process compiles the signatures named on its command line, all starting at one instant, and
# prints what the kernel returns for each with whether it came from the cache.
_MODULE = """
import numpy as np
from periscope._numba import kernel

@kernel
def scaled(values, factor):
    out = np.empty_like(values)
    for i in range(values.shape[0]):
        out[i] = values[i] * factor + 1
    return out
"""

_DRIVER = """
import sys, time
start = float(sys.argv[1])
import numpy as np
import cachedmod
time.sleep(max(0.0, start - time.time()))
print("ready", flush=True)
for name in sys.argv[2:]:
    dtype = np.dtype(name)
    result = cachedmod.scaled(np.arange(3).astype(dtype), dtype.type(2))
    print(name, result.dtype, list(result.tolist()))
print("hits", sum(cachedmod.scaled.stats.cache_hits.values()))
"""

# Every signature is compiled by two processes at once, and different signatures race too.
_SIGNATURES = ["int64", "float64", "float32", "int32", "complex128", "int16"]


def _spawn(tmp_path: Path, start: float, names: list[str]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
        "PERISCOPE_NUMBA_CACHE": "1",
    }
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), str(start), *names],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _results(process: subprocess.Popen[str]) -> tuple[dict[str, str], int]:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    lines = [line for line in out.strip().splitlines() if line != "ready"]
    values = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines[:-1]}
    return values, int(lines[-1].split()[1])


def _expected(name: str) -> str:
    import numpy as np

    dtype = np.dtype(name)
    result = np.arange(3).astype(dtype) * dtype.type(2) + 1
    return f"{result.dtype} {list(result.tolist())}"


@pytest.mark.slow
def test_cache__concurrent_processes_store_every_signature_correctly(tmp_path: Path) -> None:
    (tmp_path / "cachedmod.py").write_text(textwrap.dedent(_MODULE))
    (tmp_path / "driver.py").write_text(textwrap.dedent(_DRIVER))
    start = time.time() + 6.0  # both processes imported numba by then
    racers = [_spawn(tmp_path, start, order) for order in (_SIGNATURES, _SIGNATURES[::-1])]
    for racer in racers:
        values, _ = _results(racer)
        assert values == {name: _expected(name) for name in _SIGNATURES}

    # A fresh process finds every signature in the cache, each with its own machine code.
    values, hits = _results(_spawn(tmp_path, 0.0, _SIGNATURES))
    assert values == {name: _expected(name) for name in _SIGNATURES}
    assert hits == len(_SIGNATURES)


def test_package_source_stamp__changes_with_any_source_file(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    helper = package / "sub" / "helpers.py"
    helper.write_text("def f(x):\n    return x\n")
    before = package_source_stamp.__wrapped__(package)
    assert package_source_stamp.__wrapped__(package) == before
    helper.write_text("def f(x):\n    return x + 1\n")
    assert package_source_stamp.__wrapped__(package) != before
    (package / "sub" / "more.py").write_text("")
    assert package_source_stamp.__wrapped__(package) != before


def test_cache__loads_and_saves_wait_for_the_directory_lock(tmp_path: Path) -> None:
    (tmp_path / "cachedmod.py").write_text(textwrap.dedent(_MODULE))
    (tmp_path / "driver.py").write_text(textwrap.dedent(_DRIVER))
    cache_root = tmp_path / "cache"
    with cache_lock(str(cache_root / _cache_subdir(tmp_path)), exclusive=True):
        process = _spawn(tmp_path, 0.0, ["float64"])
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        # The kernel's first call looks in the cache and blocks there while the lock is held
        # (unblocked, compiling this kernel and saving it takes well under a second).
        time.sleep(3.0)
        assert process.poll() is None
        assert not list(cache_root.rglob("*.nbi"))
    values, hits = _results(process)
    assert values == {"float64": _expected("float64")}
    assert hits == 0
    assert len(list(cache_root.rglob("*.nbi"))) == 1


def _cache_subdir(tmp_path: Path) -> str:
    """The folder numba gives a module in ``tmp_path`` under NUMBA_CACHE_DIR."""
    from numba.core.caching import _CacheLocator

    return str(_CacheLocator.get_suitable_cache_subpath(str(tmp_path / "cachedmod.py")))
