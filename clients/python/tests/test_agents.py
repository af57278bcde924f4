"""Agents per source against a live gateway and worker (scripts/python-sdk.sh starts both, with
SENTINEL_FORWARD_ALLOW=127.0.0.0/8 and the worker's Telegram API at SENTINEL_FAKE_TELEGRAM_PORT):
a forwarded agent whose requests the ``standardwebhooks`` package verifies and whose reply reaches
the fake Telegram, and an external agent answering through the SDK's Worker with ``Reply``."""

from __future__ import annotations

import json
import os
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sentinel_sdk import InvalidSignature, Reply, Worker, verify_forward

URL = os.environ["SENTINEL_URL"]
ADMIN_TOKEN = os.environ["SENTINEL_ADMIN_TOKEN"]
TELEGRAM_PORT = int(os.environ["SENTINEL_FAKE_TELEGRAM_PORT"])
TG_SECRET = "tg-secret-0123456789"


class Recorder(ThreadingHTTPServer):
    """An HTTP server on loopback that records each POST (path, headers, raw body) and answers
    ``answer(path, body)`` as (status, JSON or None)."""

    daemon_threads = True

    def __init__(self, port: int, answer):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answer = answer
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with server.lock:
                    server.requests.append((self.path, dict(self.headers.items()), body))
                status, payload = server.answer(self.path, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 30.0) -> list[tuple[str, dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"got {len(self.requests)} of {n} requests in {timeout} s")


def telegram_answer(path: str, _body: bytes):
    return 200, {"ok": True, "result": {"message_id": 9001, "chat": {"id": 0}, "date": 0}}


class AgentTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.telegram = Recorder(TELEGRAM_PORT, telegram_answer)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.telegram.shutdown()

    def setUp(self) -> None:
        response = httpx.post(
            f"{URL}/v1/admin/tenants",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json={"name": f"py-agents-{uuid.uuid4().hex[:8]}"},
        )
        response.raise_for_status()
        self.key = response.json()["api_key"]
        self.bot = f"{uuid.uuid4().int % 10**9}:TEST"

    def source(self, agent: dict) -> dict:
        response = httpx.post(
            f"{URL}/v1/sources",
            headers={"Authorization": f"Bearer {self.key}"},
            json={"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                  "reply": {"bot_token": self.bot}, "agent": agent},
        )
        self.assertEqual(response.status_code, 201, response.text)
        return response.json()

    def message(self, source: dict, update_id: int, text: str) -> None:
        update = {"update_id": update_id, "message": {
            "message_id": update_id, "date": 1735689600,
            "from": {"id": 7001, "is_bot": False, "first_name": "Ada"},
            "chat": {"id": 7001, "type": "private"}, "text": text}}
        response = httpx.post(
            f"{URL}/hooks/{source['id']}",
            headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
            json=update,
        )
        self.assertEqual(response.status_code, 200, response.text)

    def sent_to_telegram(self, n: int) -> list[dict]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self.telegram.lock:
                mine = [json.loads(body) for path, _, body in self.telegram.requests
                        if path == f"/bot{self.bot}/sendMessage"]
            if len(mine) >= n:
                return mine
            time.sleep(0.05)
        raise AssertionError("the reply did not reach the fake Telegram")

    def test_forwards_verify_with_standardwebhooks_and_the_reply_reaches_telegram(self) -> None:
        agent = Recorder(0, lambda _path, _body: (200, {"reply": "We open at nine."}))
        self.addCleanup(agent.shutdown)
        port = agent.server_address[1]
        source = self.source({"mode": "forward", "url": f"http://127.0.0.1:{port}/agent"})
        secret = source["agent"]["secret"]
        self.message(source, 11, "When do you open?")

        path, headers, body = agent.wait_for(1)[0]
        self.assertEqual(path, "/agent")
        event = Webhook(secret).verify(body, headers)  # raises unless Sentinel signed it
        self.assertEqual(event["type"], "message.received")
        self.assertEqual(event["data"]["source_id"], source["id"])
        self.assertEqual(event["data"]["message"]["text"], "When do you open?")
        self.assertEqual(event["data"]["history"], [])
        with self.assertRaises(WebhookVerificationError):
            Webhook(secret).verify(body.replace(b"open", b"shut"), headers)
        self.assertEqual(verify_forward(secret, headers, body), event)
        other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
        with self.assertRaises(InvalidSignature):
            verify_forward(other, headers, body)
        self.assertEqual(verify_forward([other, secret], headers, body), event)

        sent = self.sent_to_telegram(1)
        self.assertEqual(sent[0]["text"], "We open at nine.")
        self.assertEqual(sent[0]["chat_id"], 7001)

    def test_an_external_agent_answers_with_reply_from_the_sdk_worker(self) -> None:
        source = self.source({"mode": "external"})
        seen: list[tuple[str, list]] = []
        worker = Worker(URL, self.key, worker_id="py-agent", wait_ms=2000)

        @worker.handler("agent.turn")
        def answer(job):
            seen.append((job.message["text"], job.history))
            return Reply(f"You said: {job.message['text']}", result={"tools": []})

        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(worker.stop)
        self.message(source, 21, "Hi there")
        self.assertEqual(self.sent_to_telegram(1)[0]["text"], "You said: Hi there")
        self.message(source, 22, "Again")
        sent = self.sent_to_telegram(2)
        self.assertEqual(sent[1]["text"], "You said: Again")
        self.assertEqual(seen[1][1], [{"role": "user", "text": "Hi there"},
                                      {"role": "agent", "text": "You said: Hi there"}])


if __name__ == "__main__":
    unittest.main()
