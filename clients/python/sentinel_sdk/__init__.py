"""Sentinel's Python SDK: the worker loop for jobs of your own kinds and for your agent's turns,
and the verifier of the requests Sentinel forwards to your agent.

The API client generated from Sentinel's OpenAPI spec is the ``sentinel_client`` package beside
this one (``from sentinel_client import AuthenticatedClient``).
"""

from sentinel_sdk.forward import InvalidSignature, verify_forward
from sentinel_sdk.worker import ApiError, Fatal, Job, LeaseLost, Reply, Retry, Worker

__all__ = [
    "ApiError",
    "Fatal",
    "InvalidSignature",
    "Job",
    "LeaseLost",
    "Reply",
    "Retry",
    "Worker",
    "verify_forward",
]
