"""Prefect flows and their thin tasks."""
