"""The SDK's Worker against a live gateway (scripts/python-sdk.sh starts one and sets SENTINEL_URL
and SENTINEL_ADMIN_TOKEN): jobs of our own kinds end to end, a worker killed with kill -9, a
concurrency cap held across five workers, and pause and resume."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import unittest
import uuid
from pathlib import Path

import httpx

from sentinel_client import AuthenticatedClient
from sentinel_client.api.jobs import create_job, get_job, list_job_attempts
from sentinel_client.api.worker import complete_job, update_kind
from sentinel_client.models import CompleteRequest, CreateJob, KindPatch
from sentinel_sdk import Fatal, Retry, Worker

URL = os.environ["SENTINEL_URL"]
ADMIN_TOKEN = os.environ["SENTINEL_ADMIN_TOKEN"]
PYTHON = os.environ.get("SENTINEL_PYTHON", sys.executable)
HERE = Path(__file__).resolve().parent


def new_tenant() -> str:
    """A tenant of its own for each test; returns its API key."""
    response = httpx.post(
        f"{URL}/v1/admin/tenants",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"name": f"py-{uuid.uuid4().hex[:8]}"},
    )
    response.raise_for_status()
    return response.json()["api_key"]


def kind() -> str:
    return f"test.k{uuid.uuid4().hex[:10]}"


def submit(client: AuthenticatedClient, job_kind: str, job_input: dict) -> int:
    body = CreateJob.from_dict({"kind": job_kind, "input": job_input})
    response = create_job.sync_detailed(client=client, body=body)
    assert response.status_code == 202, response.content
    return response.parsed.id


def status_of(client: AuthenticatedClient, job_id: int):
    return get_job.sync(job_id, client=client)


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    """A Worker running in a thread until the block ends."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.thread = threading.Thread(
            target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True
        )

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *_exc) -> None:
        self.worker.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the worker did not stop"


class WorkerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.key = new_tenant()
        self.client = AuthenticatedClient(base_url=URL, token=self.key)

    def tearDown(self) -> None:
        self.client.get_httpx_client().close()

    def worker(self, **options) -> Worker:
        options.setdefault("wait_ms", 500)
        return Worker(URL, self.key, **options)

    def test_jobs_of_our_own_kind_are_run_end_to_end(self) -> None:
        job_kind = kind()
        worker = self.worker(concurrency=4, worker_id="py-e2e")
        tries: dict[int, int] = {}

        @worker.handler(job_kind)
        def double(job):
            n = job.input["n"]
            tries[n] = job.attempt
            if n == 3 and job.attempt == 1:
                raise Retry("the first try of 3 fails")
            if n == 5:
                raise Fatal("5 cannot be doubled")
            if n == 7:
                job.progress({"step": "doubling"})
            if n == 9:
                return {"not json": object()}
            return {"doubled": n * 2}

        ids = {n: submit(self.client, job_kind, {"n": n}) for n in range(20)}
        with Running(worker):
            wait_until(
                lambda: all(
                    status_of(self.client, job_id).status in ("succeeded", "dead")
                    for job_id in ids.values()
                ),
                what="20 jobs to finish",
            )
        for n, job_id in ids.items():
            job = status_of(self.client, job_id)
            if n == 5:
                self.assertEqual(job.status, "dead")
                self.assertEqual(job.last_error["message"], "5 cannot be doubled")
            elif n == 9:
                self.assertEqual(job.status, "dead")
                self.assertIn("not JSON", job.last_error["message"])
            else:
                self.assertEqual(job.status, "succeeded", n)
                self.assertEqual(job.result["doubled"], n * 2)
        self.assertEqual(tries[3], 2, "the retried job ran a second attempt")
        attempts = list_job_attempts.sync(ids[3], client=self.client).items
        self.assertEqual([a.outcome for a in attempts], ["retry", "succeeded"])
        self.assertTrue(attempts[0].worker_id.startswith("py-e2e#"))

    def test_a_worker_killed_mid_job_loses_its_lease_to_a_second_worker(self) -> None:
        job_kind = kind()
        job_id = submit(self.client, job_kind, {"doc": "a.pdf"})
        # A worker in its own process that claims the job and hangs on it.
        first = subprocess.Popen(
            [PYTHON, str(HERE / "hanging_worker.py"), URL, self.key, job_kind],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = first.stdout.readline().split()
            self.assertEqual(line[:2], ["CLAIMED", str(job_id)], line)
            first_lease = line[2]
        finally:
            first.kill()  # SIGKILL: no goodbye, no fail, the lease just stops being renewed
            first.wait()
            first.stdout.close()
        self.assertEqual(status_of(self.client, job_id).status, "running")

        second = self.worker(worker_id="second", lease_secs=5)

        @second.handler(job_kind)
        def finish(job):
            return {"by": "second", "attempt": job.attempt}

        with Running(second):
            wait_until(
                lambda: status_of(self.client, job_id).status == "succeeded",
                timeout=30,
                what="the second worker to finish the job",
            )
        job = status_of(self.client, job_id)
        self.assertEqual(job.result["by"], "second")
        self.assertEqual(job.result["attempt"], 2)
        # The first worker's late complete, had it lived: 409 lease_lost, nothing changed.
        late = complete_job.sync_detailed(
            job_id, client=self.client, body=CompleteRequest(lease=first_lease, result="late")
        )
        self.assertEqual(late.status_code, 409)
        self.assertEqual(status_of(self.client, job_id).result["by"], "second")
        outcomes = [a.outcome for a in list_job_attempts.sync(job_id, client=self.client).items]
        self.assertEqual(outcomes, ["lease_expired", "succeeded"])

    def test_a_cap_of_two_holds_with_five_workers_claiming(self) -> None:
        job_kind = kind()
        patched = update_kind.sync(job_kind, client=self.client, body=KindPatch(max_running=2))
        self.assertEqual(patched.max_running, 2)
        lock = threading.Lock()
        state = {"now": 0, "peak": 0, "done": 0}

        def work(job):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.3)
            with lock:
                state["now"] -= 1
                state["done"] += 1
            return None

        workers = []
        for n in range(5):
            worker = self.worker(concurrency=2, worker_id=f"capped-{n}")
            worker.handler(job_kind)(work)
            workers.append(worker)
        for n in range(12):
            submit(self.client, job_kind, {"n": n})
        running = [Running(worker) for worker in workers]
        for run in running:
            run.__enter__()
        try:
            wait_until(lambda: state["done"] == 12, timeout=60, what="12 capped jobs")
        finally:
            for run in running:
                run.__exit__(None, None, None)
        self.assertEqual(state["peak"], 2, "at most two at once, and two did run together")

    def test_pause_stops_claims_and_resume_restarts_them(self) -> None:
        job_kind = kind()
        update_kind.sync(job_kind, client=self.client, body=KindPatch(paused=True))
        ids = [submit(self.client, job_kind, {"n": n}) for n in range(3)]
        worker = self.worker()
        ran = []

        @worker.handler(job_kind)
        def record(job):
            ran.append(job.id)
            return {"ok": True}

        with Running(worker):
            time.sleep(2)
            self.assertEqual(ran, [], "a paused kind is not claimed")
            self.assertTrue(all(status_of(self.client, i).status == "queued" for i in ids))
            resumed = update_kind.sync(job_kind, client=self.client, body=KindPatch(paused=False))
            self.assertFalse(resumed.paused)
            wait_until(
                lambda: all(status_of(self.client, i).status == "succeeded" for i in ids),
                what="the resumed jobs",
            )
        self.assertEqual(sorted(ran), sorted(ids))


if __name__ == "__main__":
    unittest.main()
