"""Sentinel's Python SDK: the worker loop for jobs of your own kinds.

The API client generated from Sentinel's OpenAPI spec is the ``sentinel_client`` package beside
this one (``from sentinel_client import AuthenticatedClient``).
"""

from sentinel_sdk.worker import ApiError, Fatal, Job, LeaseLost, Retry, Worker

__all__ = ["ApiError", "Fatal", "Job", "LeaseLost", "Retry", "Worker"]
