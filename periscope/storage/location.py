"""Where the data lives: a local folder or ``s3://bucket/prefix``, and the few raw operations on it.

A root is resolved once into a :class:`Location`: an fsspec filesystem (the local one, or
``s3fs.S3FileSystem`` built from explicit options), the root as an absolute URI, and zarr stores
for paths under it. Everything else in :mod:`periscope.storage` goes through these methods, so
the same code runs on a local disk and on S3.

S3 options are plain ``s3fs`` keyword arguments, the same dictionary xarray takes as
``storage_options``; :func:`s3_storage_options` builds it from an endpoint, keys and a region.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import zarr
from pydantic import SecretStr

from periscope.errors import InvalidInputError, StorageError

S3_SCHEME = "s3://"
FILE_SCHEME = "file://"


def s3_storage_options(
    *,
    endpoint_url: str | None = None,
    key: str | SecretStr | None = None,
    secret: str | SecretStr | None = None,
    region: str | None = None,
    anonymous: bool = False,
) -> dict[str, Any]:
    """The ``s3fs.S3FileSystem`` options (xarray's ``storage_options``) for an S3 root.

    Parameters
    ----------
    endpoint_url
        An S3-compatible endpoint (MinIO, SeaweedFS, moto...); None for AWS itself.
    key, secret
        Access key id and secret; None leaves them to the usual AWS credential chain
        (environment, profile, instance role).
    region
        The bucket's region, e.g. ``"us-east-1"``.
    anonymous
        Unsigned requests (public buckets).

    Listings are never cached: runs appear and disappear under other processes' hands, and a
    cached listing would hide them.
    """
    client_kwargs: dict[str, str] = {}
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    if region:
        client_kwargs["region_name"] = region
    options: dict[str, Any] = {"use_listings_cache": False}
    if anonymous:
        options["anon"] = True
    if key is not None:
        options["key"] = key.get_secret_value() if isinstance(key, SecretStr) else key
    if secret is not None:
        options["secret"] = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    return options


@dataclass(frozen=True)
class Location:
    """A resolved storage root.

    Attributes
    ----------
    uri
        The root as an absolute URI: an absolute local path, or ``s3://bucket/prefix``.
    is_local
        True for the local disk.
    storage_options
        The s3fs options (empty for the local disk).
    """

    uri: str
    is_local: bool
    storage_options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @functools.cached_property
    def fs(self) -> Any:
        """The fsspec filesystem, made on first use (building an S3 client is not free)."""
        if self.is_local:
            return fsspec.filesystem("file")
        return fsspec.filesystem("s3", **self.storage_options)

    # -- paths ----------------------------------------------------------------------------
    def child(self, *parts: str) -> str:
        """The URI of ``parts`` joined under the root."""
        return posixpath.join(self.uri, *parts) if parts else self.uri

    def fs_path(self, uri: str) -> str:
        """The filesystem's own path for a URI under this location (no scheme)."""
        return uri[len(S3_SCHEME) :] if uri.startswith(S3_SCHEME) else uri

    def relative(self, uri: str) -> str:
        """``uri`` relative to the root (``runs/<id>.zarr``)."""
        return posixpath.relpath(uri, self.uri) if self.is_local else uri[len(self.uri) + 1 :]

    # -- zarr -----------------------------------------------------------------------------
    def zarr_store(self, uri: str, *, read_only: bool) -> Any:
        """A zarr v3 store for the hierarchy at ``uri``."""
        if self.is_local:
            return zarr.storage.LocalStore(uri, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            uri, storage_options=dict(self.storage_options), read_only=read_only
        )

    # -- small objects --------------------------------------------------------------------
    def read_bytes(self, uri: str) -> bytes | None:
        """The content of a small object, or None if it does not exist."""
        try:
            data: bytes = self.fs.cat_file(self.fs_path(uri))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"reading {uri} failed: {exc}", uri=uri) from exc
        return data

    def replace_bytes(self, uri: str, data: bytes) -> None:
        """Replace a small object atomically: readers see the old or the new content, whole.

        Locally: a temporary file in the same folder, flushed and fsync'ed, then ``os.replace``
        (an atomic rename on POSIX). On S3: one PUT, which S3 applies atomically.
        """
        try:
            if not self.is_local:
                self.fs.pipe_file(self.fs_path(uri), data)
                return
            folder = os.path.dirname(uri)
            os.makedirs(folder, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, uri)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise
            _fsync_folder(folder)
        except OSError as exc:
            raise StorageError(f"writing {uri} failed: {exc}", uri=uri) from exc

    # -- folders --------------------------------------------------------------------------
    def list_names(self, uri: str) -> list[str]:
        """Names of the entries directly under ``uri`` (empty if it does not exist)."""
        path = self.fs_path(uri)
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"listing {uri} failed: {exc}", uri=uri) from exc
        return sorted(posixpath.basename(str(entry).rstrip("/")) for entry in entries)

    def has_objects(self, uri: str) -> bool:
        """True if any object (file) lies under ``uri``.

        Not ``exists``: filer-backed S3 servers such as SeaweedFS keep a "directory" after all
        of its objects are deleted, so a removed tree would still exist.
        """
        path = self.fs_path(uri)
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.find(path, maxdepth=None, withdirs=False, detail=True)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"listing {uri} failed: {exc}", uri=uri) from exc
        # s3fs reports an empty SeaweedFS folder itself as a "directory" entry.
        return any(entry.get("type") == "file" for entry in found.values())

    def remove(self, uri: str, *, recursive: bool = False) -> None:
        """Remove an object or a whole tree; a missing one is not an error."""
        path = self.fs_path(uri)
        try:
            self.fs.rm(path, recursive=recursive)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"removing {uri} failed: {exc}", uri=uri) from exc
        finally:
            self.fs.invalidate_cache(path)


def _fsync_folder(folder: str) -> None:
    # The rename itself is durable only once the folder's entry is flushed.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def resolve(
    root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Location:
    """Resolve a root (local path, ``file://`` URL or ``s3://bucket/prefix``) into a Location.

    Parameters
    ----------
    root
        The data root. Local paths are made absolute (relative to the current folder).
    storage_options
        s3fs options for an S3 root (see :func:`s3_storage_options`); ignored locally.

    Raises
    ------
    InvalidInputError
        An unsupported scheme, or an S3 URI without a bucket.
    """
    text = os.fspath(root)
    if text.startswith(S3_SCHEME):
        bucket_and_prefix = text[len(S3_SCHEME) :].strip("/")
        if not bucket_and_prefix:
            raise InvalidInputError(f"an S3 root needs a bucket: {text!r}", root=text)
        return Location(f"{S3_SCHEME}{bucket_and_prefix}", False, dict(storage_options or {}))
    if text.startswith(FILE_SCHEME):
        text = text[len(FILE_SCHEME) :]
    elif "://" in text:
        raise InvalidInputError(
            f"unsupported storage root {text!r}: use a path or s3://", root=text
        )
    absolute = str(Path(text).expanduser().absolute())
    return Location(os.path.normpath(absolute), True, {})
