"""The worker API measured with Python workers from the SDK against a live gateway
(scripts/bench-worker-api.sh starts one and sets SENTINEL_URL and SENTINEL_ADMIN_TOKEN).

- throughput: JOBS no-op jobs of one kind queued first, then PROCESSES worker processes of
  CONCURRENCY slots each burn them down; jobs per second from the workers' start to the last
  completion (the queue drained and nothing running);
- claim latency: one idle worker long-polling; SAMPLES jobs submitted one at a time; the time
  from the submission's 202 (the job is committed) to the handler starting, p50 and p99.

Prints one table row per figure, as Markdown.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import threading
import time
import uuid

import httpx

from sentinel_sdk import Worker

URL = os.environ["SENTINEL_URL"]
ADMIN_TOKEN = os.environ["SENTINEL_ADMIN_TOKEN"]
JOBS = int(os.environ.get("JOBS", "5000"))
PROCESSES = int(os.environ.get("PROCESSES", "2"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
SAMPLES = int(os.environ.get("SAMPLES", "300"))


def tenant() -> str:
    response = httpx.post(
        f"{URL}/v1/admin/tenants",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={
            "name": f"bench-{uuid.uuid4().hex[:6]}",
            "rate_limit_per_sec": 1_000_000,
            "burst": 1_000_000,
            "max_queued_jobs": 1_000_000,
        },
    )
    response.raise_for_status()
    return response.json()["api_key"]


def enqueue(http: httpx.Client, kind: str, n: int) -> None:
    for i in range(n):
        response = http.post("/v1/jobs", json={"kind": kind, "input": {"i": i}})
        assert response.status_code == 202, response.text


def run_worker(key: str, kind: str, stop_at: float) -> None:
    worker = Worker(URL, key, concurrency=CONCURRENCY, wait_ms=1000, lease_secs=30)
    worker.handler(kind)(lambda job: None)
    threading.Timer(max(0.0, stop_at - time.time()), worker.stop).start()
    worker.run(install_signal_handlers=False)


def in_flight(http: httpx.Client, kind: str) -> int:
    for item in http.get("/v1/kinds").json()["items"]:
        if item["kind"] == kind:
            return item["queued"] + item["running"]
    return 0


def throughput(key: str, http: httpx.Client) -> float:
    kind = "bench.noop"
    enqueue(http, kind, JOBS)
    started = time.time()
    processes = [
        multiprocessing.Process(target=run_worker, args=(key, kind, started + 600))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    while in_flight(http, kind) > 0:
        time.sleep(0.02)
    elapsed = time.time() - started
    for process in processes:
        process.terminate()
        process.join()
    return JOBS / elapsed


def latency(key: str, http: httpx.Client) -> list[float]:
    kind = "bench.latency"
    arrived = threading.Event()
    seen: dict[str, float] = {}
    worker = Worker(URL, key, concurrency=1, wait_ms=20_000)

    @worker.handler(kind)
    def record(job):
        seen["at"] = time.perf_counter()
        arrived.set()

    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    time.sleep(1)  # the worker is long-polling
    samples = []
    for i in range(SAMPLES):
        arrived.clear()
        response = http.post("/v1/jobs", json={"kind": kind, "input": {"i": i}})
        committed = time.perf_counter()
        assert response.status_code == 202, response.text
        assert arrived.wait(30), "the job never reached the handler"
        samples.append((seen["at"] - committed) * 1000)
        time.sleep(0.02)  # the worker is back in its long poll
    worker.stop()
    thread.join()
    return samples


def main() -> None:
    key = tenant()
    with httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {key}"}) as http:
        rate = throughput(key, http)
        samples = sorted(latency(key, http))
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print("| measurement | Sentinel worker API, Python SDK workers |")
    print("|---|---|")
    print(f"| no-op jobs processed ({JOBS} queued, {PROCESSES} processes x {CONCURRENCY} slots) | {rate:,.0f} jobs/s |")
    print(f"| submit (202) to handler start, idle long-polling worker ({SAMPLES} jobs) | p50 {p50:.1f} ms, p99 {p99:.1f} ms |")


if __name__ == "__main__":
    main()
