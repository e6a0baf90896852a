"""Sends at a steady RATE per second for DURATION seconds and reports, per message, the time from
the 202 answer to the mock provider receiving the provider call (the mock records our message id
from the Vonage `client-ref` field and its own receive time)."""
import json
import os
import sys
import threading
import time
import http.client
from datetime import datetime

port, mock_port, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rate, duration = int(os.environ.get("RATE", "200")), int(os.environ.get("DURATION", "30"))
workers = 16
accepted = {}
errors = [0]
lock = threading.Lock()
start = time.time() + 0.5
total = rate * duration


def worker(index):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in range(index, total, workers):
        due = start + n / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"channel": "SMS", "recipient": "+14155552671", "message_body": f"Code {n:06d}"})
        try:
            conn.request("POST", "/cpaas/v1/messages", body,
                         {"content-type": "application/json", "authorization": f"Bearer {token}"})
            res = conn.getresponse()
            payload = res.read()
            at = time.time()
            if res.status == 202:
                with lock:
                    accepted[json.loads(payload)["data"]["id"]] = at
            else:
                errors[0] += 1
        except Exception:
            errors[0] += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
time.sleep(3)
conn = http.client.HTTPConnection("127.0.0.1", mock_port, timeout=10)
conn.request("GET", "/_mock/requests?kind=vonage&limit=20000")
seen = json.loads(conn.getresponse().read())["requests"]
received = {r["message_id"]: datetime.fromisoformat(r["received_at"].replace("Z", "+00:00")).timestamp()
            for r in seen if r.get("message_id")}
lat = sorted((received[m] - t) * 1000 for m, t in accepted.items() if m in received)
missing = len([m for m in accepted if m not in received])
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p / 100))]
print(f"sent {total} at {rate}/s for {duration}s: accepted {len(accepted)}, errors {errors[0]}, "
      f"not yet at the provider {missing}")
print(f"202 -> provider receives: p50 {pct(50):.1f} ms   p99 {pct(99):.1f} ms   max {lat[-1]:.1f} ms   (goal p99 < 100 ms)")
