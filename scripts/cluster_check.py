#!/usr/bin/env python3
"""The checks of scripts/cluster.sh that talk HTTP to several gateways at once.

    cluster_check.py agent --port P --delay SECS --stats FILE
        A team's agent on loopback for forwarding sources: answers each POST after SECS with
        `{}` (no reply) and writes, on SIGTERM, the most requests it had in flight at once and how
        many it answered.

    cluster_check.py run --gateways URL,URL --admin-token T --agent-url URL --db DIRECT_URL
        One tenant, through every gateway in turn: a forwarding source capped at 2 requests in
        flight, 24 messages in 12 conversations; SSE streams open on every gateway from the
        start (Last-Event-ID: 0); 8 jobs of a kind capped at 2 running, claimed by one worker per
        gateway at once. A second tenant sends messages beside it. Prints a table and exits 1
        when a check fails:
          - every event of the tenant in the database reached the stream of every gateway;
          - no job of the capped kind ran beside more than one other (at most 2 at once);
          - the agent never had more than 2 requests in flight;
          - both tenants' messages were all stored.

Standard library only (the test machine has python3 and psql).
"""

import argparse
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TG_SECRET = "cluster-telegram-secret"


def agent(args):
    lock = threading.Lock()
    state = {"in_flight": 0, "most": 0, "answered": 0}

    class Agent(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                state["in_flight"] += 1
                state["most"] = max(state["most"], state["in_flight"])
            time.sleep(args.delay)
            with lock:
                state["in_flight"] -= 1
                state["answered"] += 1
            body = b"{}"
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Agent)

    def write_stats(*_):
        with lock:
            with open(args.stats, "w") as out:
                json.dump({"most_in_flight": state["most"], "answered": state["answered"]}, out)

    def stop(*_):
        write_stats()
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    # Stats are rewritten every second too, so a reader need not stop the agent.
    def tick():
        while True:
            time.sleep(1)
            write_stats()

    threading.Thread(target=tick, daemon=True).start()
    server.serve_forever()


def call(method, url, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, (json.loads(text) if text else None)


def psql(db, query):
    out = subprocess.run(
        ["psql", db, "-v", "ON_ERROR_STOP=1", "-Atqc", query],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


class Stream(threading.Thread):
    """An SSE stream of one tenant from one gateway, from the first event on."""

    def __init__(self, gateway, key):
        super().__init__(daemon=True)
        self.gateway, self.key = gateway, key
        self.ids = set()
        self.error = None

    def run(self):
        parsed = urllib.parse.urlparse(self.gateway)
        try:
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
            connection.request(
                "GET",
                "/v1/events",
                headers={"authorization": f"Bearer {self.key}", "last-event-id": "0"},
            )
            response = connection.getresponse()
            if response.status != 200:
                self.error = f"HTTP {response.status}"
                return
            for line in response:
                line = line.decode().strip()
                if line.startswith("id:"):
                    self.ids.add(int(line[3:].strip()))
        except Exception as error:  # the stream ends when the script does
            self.error = str(error)


def hook(gateway, source, update_id, chat, text):
    body = json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1735689600,
                "chat": {"id": chat, "type": "private"},
                "from": {"id": chat, "first_name": "Cluster"},
                "text": text,
            },
        }
    ).encode()
    request = urllib.request.Request(f"{gateway}/hooks/{source}", data=body, method="POST")
    request.add_header("content-type", "application/json")
    request.add_header("x-telegram-bot-api-secret-token", TG_SECRET)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def run(args):
    gateways = [url.strip().rstrip("/") for url in args.gateways.split(",") if url.strip()]
    admin = args.admin_token
    failures = []

    def tenant(name):
        status, body = call("POST", f"{gateways[0]}/v1/admin/tenants", admin, {"name": name})
        assert status == 201, (status, body)
        return body["id"], body["api_key"]

    tenant_id, key = tenant("cluster")
    bystander_id, bystander_key = tenant("cluster-bystander")
    status, source = call(
        "POST",
        f"{gateways[1 % len(gateways)]}/v1/sources",
        key,
        {
            "platform": "telegram",
            "secrets": {"secret_token": TG_SECRET},
            "agent": {"mode": "forward", "url": args.agent_url, "max_in_flight": 2},
        },
    )
    assert status == 201, (status, source)
    status, bystander_source = call(
        "POST",
        f"{gateways[0]}/v1/sources",
        bystander_key,
        {"platform": "telegram", "secrets": {"secret_token": TG_SECRET}, "agent": {"mode": "none"}},
    )
    assert status == 201, (status, bystander_source)

    streams = [Stream(gateway, key) for gateway in gateways]
    for stream in streams:
        stream.start()

    # 24 messages in 12 conversations, to every gateway in turn; the bystander's beside them.
    for n in range(24):
        gateway = gateways[n % len(gateways)]
        assert hook(gateway, source["id"], 10_000 + n, 500 + n % 12, f"message {n}") == 200
        other = gateways[(n + 1) % len(gateways)]
        assert hook(other, bystander_source["id"], 20_000 + n, 900, f"bystander {n}") == 200

    # A kind capped at 2 running, claimed by one worker per gateway at once.
    kind = "cluster.report"
    for n in range(8):
        status, body = call(
            "POST", f"{gateways[n % len(gateways)]}/v1/jobs", key, {"kind": kind, "input": {"n": n}}
        )
        assert status == 202, (status, body)
    status, body = call("PATCH", f"{gateways[0]}/v1/kinds/{kind}", key, {"max_running": 2})
    assert status == 200, (status, body)
    lock = threading.Lock()
    running = {"now": 0, "most": 0, "done": 0}

    def worker(gateway, name):
        deadline = time.time() + 60
        while time.time() < deadline:
            with lock:
                if running["done"] >= 8:
                    return
            status, claimed = call(
                "POST",
                f"{gateway}/v1/worker/claim",
                key,
                {"kinds": [kind], "max": 4, "wait_ms": 500, "worker_id": name},
            )
            if status != 200:
                time.sleep(0.1)
                continue
            jobs = claimed.get("jobs", [])
            with lock:
                running["now"] += len(jobs)
                running["most"] = max(running["most"], running["now"])
            time.sleep(0.3)
            for job in jobs:
                # Counted as finished before the answer, so the count never runs behind a claim.
                with lock:
                    running["now"] -= 1
                    running["done"] += 1
                status, body = call(
                    "POST",
                    f"{gateway}/v1/worker/jobs/{job['id']}/complete",
                    key,
                    {"lease": job["lease"]},
                )
                assert status == 200, (status, body)

    workers = [
        threading.Thread(target=worker, args=(gateway, f"cluster-worker-{i}"))
        for i, gateway in enumerate(gateways)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    # Every job of the tenant finished (the forwards answered), then every event it wrote.
    deadline = time.time() + 120
    while time.time() < deadline:
        open_jobs = int(
            psql(
                args.db,
                f"SELECT count(*) FROM jobs WHERE tenant_id = '{tenant_id}' "
                "AND status IN ('queued', 'running')",
            )
        )
        if open_jobs == 0:
            break
        time.sleep(0.5)
    else:
        failures.append(f"{open_jobs} jobs of the tenant still open after 120 s")
    in_db = {
        int(seq)
        for seq in psql(args.db, f"SELECT seq FROM events WHERE tenant_id = '{tenant_id}'").split()
    }
    deadline = time.time() + 15
    while time.time() < deadline and any(not in_db <= stream.ids for stream in streams):
        time.sleep(0.2)

    stats = {}
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            with open(args.agent_stats) as stats_file:
                stats = json.load(stats_file)
            break
        except (OSError, ValueError):
            time.sleep(0.2)
    forwards = psql(
        args.db,
        "SELECT count(*), count(DISTINCT a.worker_id) FROM jobs j JOIN job_attempts a ON a.job_id = j.id "
        f"WHERE j.tenant_id = '{tenant_id}' AND j.kind = 'agent.forward' AND a.outcome = 'succeeded'",
    ).split("|")
    stored = psql(
        args.db,
        "SELECT count(*) FILTER (WHERE tenant_id = '%s'), count(*) FILTER (WHERE tenant_id = '%s') "
        "FROM jobs WHERE kind = 'webhook.inbound'" % (tenant_id, bystander_id),
    ).split("|")

    print("| check | result |")
    print("|---|---|")
    for gateway, stream in zip(gateways, streams):
        missing = len(in_db - stream.ids)
        print(f"| events on {gateway}'s stream | {len(stream.ids & in_db)} of {len(in_db)}"
              f"{'' if stream.error is None else ' (' + stream.error + ')'} |")
        if missing or not in_db:
            failures.append(f"{missing} of {len(in_db)} events missing from {gateway}'s stream")
    print(f"| capped kind: most running at once (cap 2) | {running['most']} |")
    print(f"| capped kind: jobs finished | {running['done']} of 8 |")
    print(f"| forward: most in flight at the agent (max_in_flight 2) | {stats.get('most_in_flight')} |")
    print(f"| forward: succeeded, by workers | {forwards[0]}, by {forwards[1]} |")
    print(f"| messages stored: tenant, bystander | {stored[0]} of 24, {stored[1]} of 24 |")
    if running["most"] > 2:
        failures.append(f"{running['most']} jobs of a kind capped at 2 ran at once")
    if running["done"] != 8:
        failures.append(f"only {running['done']} of 8 capped jobs finished")
    if stats.get("most_in_flight") is None or stats["most_in_flight"] > 2:
        failures.append(f"the agent had {stats.get('most_in_flight')} requests in flight (cap 2)")
    if int(forwards[0]) == 0:
        failures.append("no forward succeeded")
    if stored != ["24", "24"]:
        failures.append(f"messages stored {stored}, expected 24 and 24")
    for failure in failures:
        print(f"CLUSTER CHECK FAILED: {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    agent_args = commands.add_parser("agent")
    agent_args.add_argument("--port", type=int, required=True)
    agent_args.add_argument("--delay", type=float, default=0.5)
    agent_args.add_argument("--stats", required=True)
    run_args = commands.add_parser("run")
    run_args.add_argument("--gateways", required=True)
    run_args.add_argument("--admin-token", required=True)
    run_args.add_argument("--agent-url", required=True)
    run_args.add_argument("--agent-stats", required=True)
    run_args.add_argument("--db", required=True)
    args = parser.parse_args()
    {"agent": agent, "run": run}[args.command](args)


if __name__ == "__main__":
    main()
