"""A forwarded agent: a small HTTP service that Sentinel POSTs each healed message to (a source
whose agent is ``forward``), and that answers with the reply Sentinel sends to the user. It checks
every request's Standard Webhooks signature first.

Run Sentinel (bash scripts/run.sh), start this service, and point a source at it (the answer shows
the signing secret once; SENTINEL_FORWARD_ALLOW lets a loopback URL through):

    pip install ./clients/python
    python examples/python/forward_agent.py --port 9000 &
    curl -s -X POST localhost:8080/v1/sources -H "Authorization: Bearer $SENTINEL_API_KEY" \\
         -H 'Content-Type: application/json' \\
         -d '{"platform": "telegram", "secrets": {"secret_token": "…"}, "reply": {"bot_token": "…"},
              "agent": {"mode": "forward", "url": "http://127.0.0.1:9000/agent"}}'
    # then give the service the secret: SENTINEL_AGENT_SECRET=whsec_… (restart it), or
    # PUT it once: curl -X PUT localhost:9000/secret -d 'whsec_…'

The answer is a few lines of rules here; your own agent (tools, retrieval, an LLM) goes in
``answer``. A slow agent is fine: Sentinel sends at most the source's ``max_in_flight`` at once and
waits up to its ``timeout_ms``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sentinel_sdk import InvalidSignature, verify_forward

log = logging.getLogger("forward_agent")
# The secrets requests may be signed with: the current one, and the previous during a rotation.
SECRETS = [s for s in os.environ.get("SENTINEL_AGENT_SECRET", "").split(",") if s]
SECRETS_LOCK = threading.Lock()
MAX_BODY = 1024 * 1024


def answer(message: dict, history: list[dict]) -> str | None:
    """The agent: the reply to ``message`` given the conversation so far, or None for no reply."""
    text = (message.get("text") or "").strip()
    if not text:
        return None
    name = (message.get("sender") or {}).get("name") or "there"
    if any(word in text.lower() for word in ("order", "parcel", "delivery")):
        return f"Hi {name}, your order is on its way; you will get a tracking link by email."
    if history:
        return f"Thanks {name}, noted. Anything else I can help with?"
    return f"Hello {name}! How can I help?"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        length = int(self.headers.get("content-length") or 0)
        if not 0 < length <= MAX_BODY:
            return self._send(413 if length else 400, {"error": "bad body length"})
        body = self.rfile.read(length)
        with SECRETS_LOCK:
            secrets = list(SECRETS)
        if not secrets:
            return self._send(503, {"error": "no secret configured yet"}, retry_after=5)
        try:
            event = verify_forward(secrets, dict(self.headers.items()), body)
        except InvalidSignature as error:
            log.warning("refused a request: %s", error)
            return self._send(401, {"error": "invalid signature"})
        if event.get("type") != "message.received":
            return self._send(204, None)
        data = event["data"]
        reply = answer(data["message"], data.get("history", []))
        log.info("job %s: %r -> %r", data["job_id"], data["message"].get("text"), reply)
        self._send(200, {"reply": reply} if reply else None)

    def do_PUT(self) -> None:  # noqa: N802
        if self.path != "/secret":
            return self._send(404, {"error": "not found"})
        length = int(self.headers.get("content-length") or 0)
        secret = self.rfile.read(min(length, 200)).decode().strip()
        if not secret.startswith("whsec_"):
            return self._send(422, {"error": "a whsec_… secret"})
        with SECRETS_LOCK:
            SECRETS[:] = [secret]
        self._send(204, None)

    def _send(self, status: int, body: dict | None, retry_after: int | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if retry_after:
            self.send_header("Retry-After", str(retry_after))
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    log.info("listening on http://%s:%d/agent", args.host, args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
