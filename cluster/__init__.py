"""Making or joining a Dask cluster from settings."""
