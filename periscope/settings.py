"""The one configuration model.

Only entry points (``flows/``, ``api/``, ``cluster/``, the CLI) build a :class:`Settings`; library
functions take explicit arguments. Environment variables use the ``PERISCOPE_`` prefix and ``__``
for nesting. The market-data key is also read from the vendor's
conventional ``MASSIVE_API_KEY``. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Periscope's configuration, from the environment (and ``.env`` if present)."""

    model_config = SettingsConfigDict(
        env_prefix="PERISCOPE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    data_root: str = Field(
        default="./data", description="Local path or s3://bucket/prefix for published runs."
    )
    massive_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PERISCOPE_MASSIVE_API_KEY", "MASSIVE_API_KEY"),
    )
    massive_base_url: str = "https://api.massive.com"

    # Market data (periscope.marketdata): client limits, the response cache, flat files on S3.
    marketdata_requests_per_second: float | None = Field(
        default=50.0,
        gt=0,
        description="Client-side request rate; the free tier allows 5/60, paid tiers < 100.",
    )
    marketdata_max_concurrency: int = Field(default=8, ge=1)
    marketdata_cache_dir: str | None = Field(
        default=None, description="On-disk response cache folder; None disables the cache."
    )
    marketdata_cache_max_bytes: int = Field(default=512 * 1024**2, ge=0)
    massive_flatfiles_endpoint: str = "https://files.massive.com"
    massive_flatfiles_bucket: str = "flatfiles"
    # Flat files use their own S3 keys from the Massive dashboard, not the REST API key.
    massive_flatfiles_access_key: SecretStr | None = None
    massive_flatfiles_secret_key: SecretStr | None = None
    log_level: str = "INFO"

    # Dask: join ``dask_address`` (PERISCOPE_DASK_ADDRESS) if set, else start a local cluster.
    dask_address: str | None = Field(
        default=None, description="Scheduler address of an existing cluster, tcp://host:8786."
    )
    dask_n_workers: int | None = Field(default=None, ge=1, description="Local worker processes.")
    dask_threads_per_worker: int = Field(default=1, ge=1)
    dask_memory_limit: str = Field(default="auto", description="Per local worker, e.g. '4GiB'.")
    dask_dashboard_address: str = "127.0.0.1:8787"
