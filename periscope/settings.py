"""The one configuration model.

Only entry points (``flows/``, ``api/``, ``cluster/``, the CLI) build a :class:`Settings`; library
functions take explicit arguments. Environment variables use the ``PERISCOPE_`` prefix and ``__``
for nesting. The market-data key is also read from the vendor's
conventional ``MASSIVE_API_KEY``. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

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

    # -- Storage (periscope.storage): S3 access for an s3:// data_root, and retention. ---------
    storage_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint for an s3:// data_root; None for AWS."
    )
    storage_access_key: SecretStr | None = Field(
        default=None, description="S3 access key id; None uses the AWS credential chain."
    )
    storage_secret_key: SecretStr | None = None
    storage_region: str | None = Field(default=None, description="The bucket's region.")
    storage_keep_days: int = Field(
        default=30, ge=0, description="Published runs older than this many days are removed."
    )
    storage_grace: dt.timedelta = Field(
        default=dt.timedelta(hours=6),
        description="Unpublished runs older than this are removed; longer than any run takes.",
    )

    def storage_options(self) -> dict[str, Any]:
        """The s3fs options for :attr:`data_root` (empty for a local root), as every
        :mod:`periscope.storage` function takes them in ``storage_options``."""
        if not self.data_root.startswith("s3://"):
            return {}
        from periscope.storage.location import s3_storage_options  # storage imports zarr

        return s3_storage_options(
            endpoint_url=self.storage_endpoint_url,
            key=self.storage_access_key,
            secret=self.storage_secret_key,
            region=self.storage_region,
        )

    # -- pipeline (flows/, the ``periscope`` CLI) ---------------------------------------------
    pipeline_universe: list[str] = Field(
        default_factory=list,
        description=(
            "Underlyings of a run (JSON list in the environment); empty: the first "
            "pipeline_universe_size names of the simulated market, or of DEFAULT_MASSIVE_UNIVERSE "
            "with a Massive key."
        ),
    )
    pipeline_universe_size: int = Field(default=8, ge=1)
    pipeline_batch_size: int = Field(
        default=25, ge=1, description="Underlyings per Prefect task and per Dask map item."
    )
    pipeline_retries: int = Field(
        default=3, ge=0, description="Retries of a batch on transient market-data errors."
    )
    pipeline_retry_delays: list[float] = Field(
        default_factory=lambda: [2.0, 10.0, 30.0],
        description="Seconds before each retry (with jitter); the last repeats.",
    )
    simulator_seed: int = 7
    simulator_days: int = Field(
        default=260, ge=2, description="Trading days of simulated history, ending today."
    )
    simulator_synthetic_contracts: int | None = Field(
        default=None,
        description=(
            "Contracts each synthetic simulator name lists (about; load tests: 2000 gives the "
            "1M-contract universe at 500 names); None lists them as a mid-size stock."
        ),
    )
    risk_spot_shifts: list[float] = Field(
        default_factory=lambda: [-0.10, -0.05, -0.02, 0.0, 0.02, 0.05, 0.10],
        description="Relative spot shifts of the sensitivity grid.",
    )
    risk_vol_shifts: list[float] = Field(
        default_factory=lambda: [-0.05, 0.0, 0.05],
        description="Additive volatility shifts (decimals) of the sensitivity grid.",
    )
    risk_horizon_days: list[float] = Field(
        default_factory=lambda: [0.0, 1.0, 7.0],
        description="Calendar days forward of the sensitivity grid.",
    )
    risk_sticky: str = Field(
        default="moneyness", pattern="^(strike|moneyness)$", description="Smile dynamics."
    )
    schedule_timezone: str = "America/New_York"
    schedule_intraday: list[str] = Field(
        default_factory=lambda: ["30,45 9 * * 1-5", "*/15 10-15 * * 1-5", "0 16 * * 1-5"],
        description="Cron lines of the intraday snapshots (every 15 min, 09:30-16:00).",
    )
    schedule_end_of_day: str = "30 16 * * 1-5"
    schedule_backfill: str = "0 2 * * 2-6"
    history_days: int = Field(
        default=260, ge=1, description="Trading days of history a backfill covers (1 year)."
    )
