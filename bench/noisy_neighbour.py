"""Noisy neighbour: tenant A posts BULK messages (default 50,000) in bulk requests of 1000 as
fast as it can; meanwhile tenant B sends RATE `high` messages a second (default 10) for
DURATION seconds (default 30). Reports B's time from the 202 to the mock provider taking the
call (p50, p99, max) while A drains, and A's drain rate, from the mock's tally; then where B's
time went, from the rows: accepted (the message's insert) -> its delivery's transaction started
(the attempt) -> the provider took the call (the mock's clock)."""
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime

port, mock_port, token_a, token_b = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
db_url = sys.argv[5] if len(sys.argv) > 5 else None
bulk = int(os.environ.get("BULK", "50000"))
rate = int(os.environ.get("RATE", "10"))
duration = int(os.environ.get("DURATION", "30"))
a_ids, b_sent = [], {}
a_first_202 = [None]
errors = [0]
lock = threading.Lock()


def post(conn, path, token, body):
    conn.request("POST", path, json.dumps(body),
                 {"content-type": "application/json", "authorization": f"Bearer {token}"})
    res = conn.getresponse()
    return res.status, json.loads(res.read())


def tenant_a():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for start in range(0, bulk, 1000):
        items = [{"channel": "SMS", "recipient": "+14155552671",
                  "message_body": f"Doors open at 19:00 ({i})"} for i in range(start, min(bulk, start + 1000))]
        status, body = post(conn, "/cpaas/v1/messages/bulk", token_a, {"messages": items})
        if status != 202:
            with lock:
                errors[0] += 1
            continue
        with lock:
            if a_first_202[0] is None:
                a_first_202[0] = time.time()
            a_ids.extend(r["message_id"] for r in body["data"]["results"] if r["message_id"])


def tenant_b():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    begin = time.time()
    for n in range(rate * duration):
        delay = begin + n / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        status, body = post(conn, "/cpaas/v1/messages", token_b,
                            {"channel": "SMS", "recipient": "+14155550100",
                             "message_body": f"Your code is {n:06d}", "priority": "high"})
        if status == 202:
            b_sent[body["data"]["id"]] = time.time()
        else:
            with lock:
                errors[0] += 1


a = threading.Thread(target=tenant_a)
a.start()
while a_first_202[0] is None and a.is_alive():
    time.sleep(0.01)
b = threading.Thread(target=tenant_b)
b.start()
a.join()
b.join()


def read_tally():
    conn = http.client.HTTPConnection("127.0.0.1", mock_port, timeout=60)
    conn.request("GET", "/_mock/tally")
    return json.loads(conn.getresponse().read())["messages"]


wait_until = time.time() + int(os.environ.get("DRAIN_WAIT", "600"))
tally = read_tally()
while time.time() < wait_until and any(m not in tally for m in a_ids + list(b_sent)):
    time.sleep(2)
    tally = read_tally()


def taken(m):
    return datetime.fromisoformat(tally[m]["first_at"].replace("Z", "+00:00")).timestamp()


b_lat = sorted((taken(m) - at) * 1000 for m, at in b_sent.items() if m in tally)
a_taken = [taken(m) for m in a_ids if m in tally]
duplicated = sum(1 for m in a_ids + list(b_sent) if tally.get(m, {}).get("count", 0) > 1)
lost = sum(1 for m in a_ids + list(b_sent) if m not in tally)
pct = lambda xs, p: xs[min(len(xs) - 1, int(len(xs) * p / 100))]
print(f"tenant A: {len(a_ids)} bulk messages accepted; tenant B: {len(b_sent)} high messages at {rate}/s; errors {errors[0]}")
if b_lat:
    print(f"B's 202 -> provider while A drains: p50 {pct(b_lat, 50):.1f} ms   p99 {pct(b_lat, 99):.1f} ms   "
          f"max {b_lat[-1]:.1f} ms   (goal p99 < 100 ms)")
if b_lat:
    begin = min(b_sent.values())
    windows = {}
    for m, at in b_sent.items():
        if m in tally:
            windows.setdefault(int((at - begin) // 5), []).append((taken(m) - at) * 1000)
    print("B's p50 / p99 by 5 s window from its first send: " + "   ".join(
        f"{pct(sorted(xs), 50):.0f} / {pct(sorted(xs), 99):.0f}" for _, xs in sorted(windows.items())))
if a_taken:
    span = max(a_taken) - a_first_202[0]
    print(f"A's drain: {len(a_taken)} messages in {span:.1f} s from its first 202: {len(a_taken) / span:.0f} messages/s")
print(f"lost {lost}, duplicated {duplicated}")


def stages():
    """B's messages: seconds since the epoch of the insert and of its first attempt's start."""
    uuid_of = {str(uuid.UUID(hex=m.split("_", 1)[1])): m for m in b_sent}
    ids = ",".join(f"'{u}'" for u in uuid_of)
    sql = ("SELECT m.id, extract(epoch FROM m.created_at), extract(epoch FROM min(a.started_at)) "
           f"FROM messages m JOIN message_attempts a ON a.message_id = m.id WHERE m.id IN ({ids}) GROUP BY m.id")
    out = subprocess.run(["psql", db_url, "-At", "-F", " ", "-c", sql], capture_output=True, text=True, check=True)
    return {uuid_of[row[0]]: (float(row[1]), float(row[2]))
            for row in (line.split() for line in out.stdout.splitlines())}


if db_url and b_sent:
    rows = stages()
    ms = lambda xs: sorted(x * 1000 for x in xs)
    queued = ms(rows[m][1] - rows[m][0] for m in rows if m in tally)
    sending = ms(taken(m) - rows[m][1] for m in rows if m in tally)
    for name, xs in (("accepted -> delivery started", queued), ("delivery started -> provider", sending)):
        if xs:
            print(f"  B, {name:30}: p50 {pct(xs, 50):6.1f} ms   p99 {pct(xs, 99):6.1f} ms   max {xs[-1]:6.1f} ms")
sys.exit(1 if lost or duplicated else 0)
