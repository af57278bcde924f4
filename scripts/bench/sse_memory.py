#!/usr/bin/env python3
"""Stalled event streams against a gateway's memory (docs/RELIABILITY.md, "Memory bounded in
bytes"). The review's scenario against a gateway binary: a tenant stores 24 progress events of 2 MiB,
then opens 10 event streams (Last-Event-ID: 0) that never read. Prints the gateway's RSS growth
over time, and whether the stalled sockets were closed. usage: rss.py BINARY DBNAME PORT"""
import json, os, socket, subprocess, sys, time, urllib.request

binary, dbname, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = "bench-admin-token-0123456789"
# The server DATABASE_URL names (its database part is replaced), or the local default.
base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x").rsplit("/", 1)[0]
psql = lambda db, sql: subprocess.run(["psql", f"{base}/{db}", "-qAtc", sql], check=True,
                                      capture_output=True, text=True).stdout.strip()
psql("postgres", f"DROP DATABASE IF EXISTS {dbname}")
psql("postgres", f"CREATE DATABASE {dbname}")
env = dict(os.environ, DATABASE_URL=f"{base}/{dbname}", SENTINEL_LISTEN=f"127.0.0.1:{port}",
           SENTINEL_ADMIN_TOKEN=admin, RUST_LOG=os.environ.get("RUST_LOG", "info"))
subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"{dbname}.log"), "w")
gw = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)

def rss_mib():
    with open(f"/proc/{gw.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

try:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/admin/tenants", method="POST",
                                 data=json.dumps({"name": "bench"}).encode(),
                                 headers={"Authorization": f"Bearer {admin}",
                                          "Content-Type": "application/json"})
    tenant = json.load(urllib.request.urlopen(req))
    psql(dbname, f"""INSERT INTO events (tenant_id, job_id, type, data)
        SELECT '{tenant['id']}', 1, 'job.progress', jsonb_build_object('job_id', 1, 'kind',
          'llm.generate', 'status', 'running', 'attempt', 1, 'at', '2026-12-01T00:00:00Z',
          'stage', 'generate', 'text', repeat('x', 2097152))
        FROM generate_series(1, 24); SELECT pg_notify('sentinel_events', '')""")
    time.sleep(2)
    base_rss = rss_mib()
    results = []
    for round_no in (1, 2):
        before = rss_mib()
        socks = []
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall((f"GET /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
                       f"{tenant['api_key']}\r\nLast-Event-ID: 0\r\n\r\n").encode())
            socks.append(s)
        peak, samples = before, []
        start = time.time()
        while time.time() - start < 15:
            now = rss_mib()
            peak = max(peak, now)
            samples.append(round(now - base_rss, 1))
            time.sleep(0.25)
        closed = 0
        for s in socks:
            s.setblocking(False)
            try:
                while True:
                    if not s.recv(1 << 20):
                        closed += 1
                        break
            except BlockingIOError:
                pass  # still open
            except ConnectionResetError:
                closed += 1
        results.append({"round": round_no, "peak_growth_mib": round(peak - base_rss, 1),
                        "growth_after_15s_mib": round(rss_mib() - base_rss, 1),
                        "sockets_closed_by_gateway": closed,
                        "growth_every_2s": samples[::8]})
        if round_no == 1:
            keep = socks  # the old gateway never closes them; keep them open for round 2
    print(json.dumps({"binary": binary, "malloc": os.environ.get("MALLOC_MMAP_THRESHOLD_", "default"),
                      "rss_before_mib": round(base_rss, 1), "rounds": results}))
finally:
    gw.terminate()
    gw.wait(timeout=20)
