"""Ingest load from Python clients: N threads, each with one keep-alive
connection, POST single records to /api/ai_usage/record for a while, then the
requests per second are printed as one JSON line.

This is the shape of the Python services that call the ingest route (the
original service's users), and the client the reliability issue measured
4,300 req/s with. Standard library only.

    ai-usage --dir /tmp/x serve --addr 127.0.0.1:18091 &
    python3 crates/ai-usage-server/bench/ingest_load.py --addr 127.0.0.1:18091 --clients 8 --secs 8
"""

import argparse
import http.client
import json
import threading
import time


def client(host, port, cid, stop, counts):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    ok = busy = other = 0
    n = 0
    while not stop.is_set():
        body = json.dumps(
            {
                "model": "qwen-plus",
                "function": "load",
                "input_tokens": 1200,
                "output_tokens": 300,
                "user_id": f"u{cid}",
                "request_id": f"py{cid}-{n}",
            }
        )
        n += 1
        conn.request(
            "POST",
            "/api/ai_usage/record",
            body=body,
            headers={"content-type": "application/json"},
        )
        resp = conn.getresponse()
        resp.read()
        if 200 <= resp.status < 300:
            ok += 1
        elif resp.status == 503:
            busy += 1
        else:
            other += 1
    conn.close()
    counts[cid] = (ok, busy, other)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", default="127.0.0.1:18091")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--secs", type=float, default=8.0)
    a = p.parse_args()
    host, port = a.addr.rsplit(":", 1)
    stop = threading.Event()
    counts = [(0, 0, 0)] * a.clients
    threads = [
        threading.Thread(target=client, args=(host, int(port), i, stop, counts))
        for i in range(a.clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(a.secs)
    stop.set()
    for t in threads:
        t.join()
    secs = time.perf_counter() - start
    ok = sum(c[0] for c in counts)
    print(
        json.dumps(
            {
                "clients": a.clients,
                "secs": round(secs, 2),
                "ok": ok,
                "busy_503": sum(c[1] for c in counts),
                "other": sum(c[2] for c in counts),
                "req_per_s": round(ok / secs),
            }
        )
    )


if __name__ == "__main__":
    main()
