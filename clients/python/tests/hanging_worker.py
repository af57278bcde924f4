"""A worker that claims one job of the given kind, says so on stdout, and then hangs on it until it
is killed: the first worker of the kill -9 test in test_worker.py.

    python hanging_worker.py URL API_KEY KIND
"""

import sys
import time

from sentinel_sdk import Worker

url, key, kind = sys.argv[1:4]
worker = Worker(url, key, worker_id="doomed", lease_secs=5, wait_ms=5000)


@worker.handler(kind)
def hang(job):
    print("CLAIMED", job.id, job.lease, flush=True)
    time.sleep(3600)


worker.run()
