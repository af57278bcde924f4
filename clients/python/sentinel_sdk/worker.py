"""A worker for jobs of your own kinds, over Sentinel's worker API.

    from sentinel_sdk import Worker, Retry, Fatal

    worker = Worker("http://127.0.0.1:8080", api_key, concurrency=4)

    @worker.handler("doc.summarise")
    def summarise(job):
        job.progress({"stage": "reading"})
        return {"summary": summarise_pdf(job.input["url"])}

    worker.run()  # until SIGINT or SIGTERM, or worker.stop()

A handler's return value completes the job (it becomes the job's result). For an ``agent.turn``
(the messages of a source whose agent is ``external``), return ``Reply(text)`` to answer the user:

    @worker.handler("agent.turn")
    def answer(job):
        return Reply(my_agent(job.message["text"], job.history))
 An exception fails the
attempt: ``Retry`` (or any other exception) retries it with the queue's backoff while attempts
remain, ``Retry(after_secs=…)`` snoozes it without spending an attempt, and ``Fatal`` ends it
``dead``. While a handler runs, a heartbeat thread keeps every lease alive and learns of cancels
(``job.cancel_requested``); a handler that sees one should stop, and its job then ends
``canceled``. When the worker's lease was lost (it expired and the job went to another worker), the
late outcome is dropped: the gateway answers 409 ``lease_lost`` and nothing changes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from sentinel_client import AuthenticatedClient
from sentinel_client.api.worker import (
    claim_jobs,
    complete_job,
    fail_job,
    heartbeat_job,
    report_job_progress,
)
from sentinel_client.models import (
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    ProgressRequest,
)
from sentinel_client.types import Response, Unset

log = logging.getLogger("sentinel_sdk.worker")

Handler = Callable[["Job"], Any]


class Retry(Exception):
    """Fail this attempt and run the job again: after the queue's backoff, or, with ``after_secs``,
    after that many seconds without spending an attempt (a snooze)."""

    def __init__(self, message: str = "retry", after_secs: int | None = None):
        super().__init__(message)
        self.after_secs = after_secs


class Fatal(Exception):
    """Fail the job for good: it ends ``dead``, whatever attempts remain."""


class Reply:
    """An ``agent.turn`` handler's answer: ``text`` goes to the user through the outbox, in the
    same transaction as the completion; ``result`` (optional) is kept as the job's result."""

    def __init__(self, text: str, result: Any = None):
        self.text = text
        self.result = result


class LeaseLost(Exception):
    """The job's lease is no longer this worker's (409 ``lease_lost``): it expired and the job was
    claimed again, or it finished or was canceled. Nothing this worker sends about it counts."""


class ApiError(Exception):
    """The gateway answered a call with an unexpected status."""

    def __init__(self, status: int, body: bytes):
        super().__init__(f"HTTP {status}: {body[:500].decode('utf-8', 'replace')}")
        self.status = status
        self.body = body


def _check(response: Response[Any], job_id: int | None = None) -> Any:
    status = int(response.status_code)
    if status == 409 and job_id is not None:
        raise LeaseLost(f"job {job_id}: lease lost")
    if not 200 <= status < 300:
        raise ApiError(status, response.content)
    return response.parsed


class Job:
    """A claimed job, as a handler sees it."""

    def __init__(self, worker: Worker, claimed: Any):
        self._worker = worker
        self.id: int = claimed.id
        self.kind: str = claimed.kind
        self.attempt: int = claimed.attempt
        self.max_attempts: int = claimed.max_attempts
        self.priority: int = claimed.priority
        self.input: Any = claimed.input_
        self.lease: str = claimed.lease
        # An agent turn's message and the conversation before it (oldest first), read when the
        # turn was claimed.
        message = getattr(claimed, "message", None)
        self.message: Any = None if message is None or isinstance(message, Unset) else message
        self.history: list[Any] = (
            self.input.get("history", []) if self.kind == "agent.turn" else []
        )
        # Every message of the turn, oldest first (a burst is one turn); the last is `message`.
        messages = getattr(claimed, "messages", None)
        self.messages: list[Any] = (
            list(messages)
            if messages is not None and not isinstance(messages, Unset)
            else ([self.message] if self.message is not None else [])
        )
        self._cancel = threading.Event()
        self._lost = threading.Event()

    @property
    def cancel_requested(self) -> bool:
        """Someone asked to cancel the job; stop as soon as you can."""
        return self._cancel.is_set()

    @property
    def lease_lost(self) -> bool:
        """The lease expired and the job may already run elsewhere; stop, nothing you send counts."""
        return self._lost.is_set()

    def progress(self, data: Any) -> None:
        """Appends a ``job.progress`` event that the job's followers see on ``/v1/events``."""
        body = ProgressRequest(lease=self.lease, progress=data)
        response = report_job_progress.sync_detailed(
            self.id, client=self._worker.client, body=body
        )
        try:
            _check(response, self.id)
        except LeaseLost:
            self._lost.set()
            raise


class Worker:
    """Claims jobs of the kinds it has handlers for and runs them, ``concurrency`` at a time."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        lease_secs: int = 30,
        wait_ms: int = 20_000,
        client: AuthenticatedClient | None = None,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 5 <= lease_secs <= 3600:
            raise ValueError("lease_secs must be from 5 to 3600")
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = concurrency
        self.lease_secs = lease_secs
        self.wait_ms = wait_ms
        # A long poll lasts up to wait_ms; the read timeout leaves room for it.
        self._owns_client = client is None
        self.client = client or AuthenticatedClient(
            base_url=base_url,
            token=api_key,
            timeout=httpx.Timeout(10.0, read=wait_ms / 1000 + 15),
            raise_on_unexpected_status=False,
        )
        self._handlers: dict[str, Handler] = {}
        self._running: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(concurrency)
        self._stop = threading.Event()

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Registers the decorated function as the handler of ``kind``."""

        def register(function: Handler) -> Handler:
            self._handlers[kind] = function
            return function

        return register

    def stop(self) -> None:
        """Stops claiming; ``run`` returns once the jobs in hand have finished (and a claim that is
        long-polling has answered: at most ``wait_ms``)."""
        self._stop.set()

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Claims and runs jobs until ``stop`` (or SIGINT / SIGTERM when installed), then waits for
        the jobs in hand to finish."""
        if not self._handlers:
            raise ValueError("no handlers: register one with @worker.handler(kind)")
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stop())
        heartbeats = threading.Thread(target=self._heartbeat_loop, daemon=True)
        heartbeats.start()
        backoff = 0.5
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="sentinel-job") as pool:
            while not self._stop.is_set():
                # Claim only for free slots, so a job is never claimed to wait for a thread.
                self._slots.acquire()
                if self._stop.is_set():
                    self._slots.release()
                    break
                free = 1
                while free < self.concurrency and self._slots.acquire(blocking=False):
                    free += 1
                try:
                    jobs = self._claim(free)
                    backoff = 0.5
                except (httpx.HTTPError, ApiError) as error:
                    log.warning("claim failed (%s); retrying in %.1f s", error, backoff)
                    jobs = []
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10)
                for _ in range(free - len(jobs)):
                    self._slots.release()
                for job in jobs:
                    with self._lock:
                        self._running[job.id] = job
                    pool.submit(self._execute, job)
        heartbeats.join(timeout=1)
        if self._owns_client:
            self.client.get_httpx_client().close()

    def _claim(self, free: int) -> list[Job]:
        body = ClaimRequest(
            kinds=sorted(self._handlers),
            worker_id=self.worker_id,
            max_=free,
            wait_ms=self.wait_ms,
            lease_secs=self.lease_secs,
        )
        parsed = _check(claim_jobs.sync_detailed(client=self.client, body=body))
        return [Job(self, claimed) for claimed in parsed.jobs]

    def _execute(self, job: Job) -> None:
        try:
            try:
                result = self._handlers[job.kind](job)
            except Exception as error:  # noqa: BLE001 - every failure is reported, none is lost
                self._fail(job, error)
            else:
                reply = None
                if isinstance(result, Reply):
                    reply, result = result.text, result.result
                try:
                    json.dumps(result)
                except (TypeError, ValueError) as error:
                    # Retrying cannot make the result storable: the job ends dead, saying why.
                    self._fail(job, Fatal(f"the handler's result is not JSON: {error}"))
                    return
                body = CompleteRequest(lease=job.lease, result=result)
                if reply is not None:
                    body.reply = reply
                _check(complete_job.sync_detailed(job.id, client=self.client, body=body), job.id)
        except LeaseLost:
            log.warning("job %s: the lease was lost; its outcome was dropped", job.id)
        except Exception:  # noqa: BLE001 - a failed report must not kill the worker
            log.exception("job %s: reporting its outcome failed; its lease will expire", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            self._slots.release()

    def _fail(self, job: Job, error: Exception) -> None:
        detail = {
            "code": "fatal" if isinstance(error, Fatal) else "exception",
            "type": type(error).__name__,
            "message": str(error),
            "traceback": traceback.format_exc(limit=20),
        }
        body = FailRequest(lease=job.lease, error=detail)
        if isinstance(error, Fatal):
            body.retry = False
        elif isinstance(error, Retry) and error.after_secs is not None:
            body.retry_after_secs = max(1, int(error.after_secs))
        _check(fail_job.sync_detailed(job.id, client=self.client, body=body), job.id)

    def _heartbeat_loop(self) -> None:
        interval = self.lease_secs / 3
        while not (self._stop.is_set() and not self._running):
            time.sleep(min(interval, 1.0) if self._stop.is_set() else interval)
            with self._lock:
                jobs = list(self._running.values())
            for job in jobs:
                if job.lease_lost:
                    continue
                body = HeartbeatRequest(lease=job.lease, lease_secs=self.lease_secs)
                try:
                    beat = _check(
                        heartbeat_job.sync_detailed(job.id, client=self.client, body=body), job.id
                    )
                except LeaseLost:
                    job._lost.set()
                    continue
                except (httpx.HTTPError, ApiError) as error:
                    log.warning("job %s: heartbeat failed (%s)", job.id, error)
                    continue
                if beat.cancel_requested:
                    job._cancel.set()
