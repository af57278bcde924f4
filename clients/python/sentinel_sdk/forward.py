"""Verifying what Sentinel forwards to your agent (a source whose agent is ``forward``).

Sentinel POSTs each healed message to the agent's URL as a Standard Webhook, signed with the
source's agent secret (``whsec_…``, shown once when the source is created or the secret rotated):

    from sentinel_sdk import verify_forward, InvalidSignature

    try:
        event = verify_forward(secret, request.headers, request.body)
    except InvalidSignature:
        return 401
    message = event["data"]["message"]       # the canonical message
    history = event["data"]["history"]       # [{"role": "user" | "agent", "text": …}], oldest first
    return 200, {"reply": answer(message["text"], history)}

Pass the raw body exactly as received. During a rotation give both secrets: a request signed with
either is accepted (Sentinel signs with both through the overlap it was told).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class InvalidSignature(Exception):
    """The request is not one Sentinel signed with the given secret(s), or it is too old or too new
    (more than five minutes off), or a header is missing."""


def verify_forward(
    secrets: str | Iterable[str], headers: Mapping[str, str], body: bytes | str
) -> Any:
    """Checks the ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers against
    ``body`` with each of ``secrets`` and returns the parsed body; raises ``InvalidSignature``."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("verify_forward needs at least one secret")
    plain = {str(name): str(value) for name, value in headers.items()}
    last: Exception | None = None
    for key in keys:
        try:
            return Webhook(key).verify(body, plain)
        except WebhookVerificationError as error:
            last = error
    raise InvalidSignature(str(last))
