"""Soak: steady sends for DURATION seconds at RATE per second; per WINDOW, the p99 from the 202
to the mock taking the call and the service's RSS at the window's end; the RSS at the start
(idle, before the first send) and the end; lost and duplicated messages from the mock's tally
(which never rolls over)."""
import http.client
import json
import os
import sys
import threading
import time
from datetime import datetime

port, mock_port, token, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rate = int(os.environ.get("RATE", "200"))
duration = int(os.environ.get("DURATION", "1800"))
window = int(os.environ.get("WINDOW", "300"))
workers = 16
accepted = {}
errors = [0]
lock = threading.Lock()
start = time.time() + 0.5
total = rate * duration


def rss_mib():
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


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
                with lock:
                    errors[0] += 1
        except Exception:
            with lock:
                errors[0] += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


rss_at_window_end = {}


def sample_rss():
    w = 0
    while w * window < duration:
        time.sleep(max(0.0, start + (w + 1) * window - time.time()))
        rss_at_window_end[w] = rss_mib()
        w += 1


time.sleep(0.4)
rss_start = rss_mib()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
sampler = threading.Thread(target=sample_rss, daemon=True)
sampler.start()
for t in threads:
    t.start()
for t in threads:
    t.join()
rss_end = rss_mib()
sent_at_end = time.time()


def read_tally():
    conn = http.client.HTTPConnection("127.0.0.1", mock_port, timeout=60)
    conn.request("GET", "/_mock/tally")
    return json.loads(conn.getresponse().read())["messages"]


# A message is lost only when the backlog has drained and the mock never took it: wait while
# the mock keeps taking messages (up to DRAIN_WAIT seconds, default 900).
drain_wait = int(os.environ.get("DRAIN_WAIT", "900"))
tally, last, still = read_tally(), -1, time.time()
while time.time() - sent_at_end < drain_wait and any(m not in tally for m in accepted):
    time.sleep(5)
    tally = read_tally()
    if len(tally) != last:
        last, still = len(tally), time.time()
    elif time.time() - still > 60:
        break
backlog_secs = time.time() - sent_at_end
lost = [m for m in accepted if m not in tally]
duplicated = [m for m in accepted if tally.get(m, {}).get("count", 0) > 1]
windows = {}
for m, at in accepted.items():
    taken = tally.get(m)
    if taken:
        first = datetime.fromisoformat(taken["first_at"].replace("Z", "+00:00")).timestamp()
        windows.setdefault(int((at - start) // window), []).append((first - at) * 1000)
print(f"sent {total} at {rate}/s for {duration}s: accepted {len(accepted)}, errors {errors[0]}")
for w in sorted(windows):
    lat = sorted(windows[w])
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    rss = f", RSS {rss_at_window_end[w]:.1f} MiB" if w in rss_at_window_end else ""
    print(f"  window {w * window:>5}-{(w + 1) * window}s: {len(lat)} messages, "
          f"p50 {lat[len(lat) // 2]:.1f} ms, p99 {p99:.1f} ms{rss}")


def growth(a, b):
    return (b - a) / a * 100 if a else 0.0


print(f"RSS {rss_start:.1f} MiB at the start, {rss_end:.1f} MiB at the end "
      f"({growth(rss_start, rss_end):+.1f} %)")
if 0 in rss_at_window_end:
    warm = rss_at_window_end[0]
    print(f"RSS {warm:.1f} MiB after the first window, {rss_end:.1f} MiB at the end "
          f"({growth(warm, rss_end):+.1f} % once warm)")
print(f"backlog drained {backlog_secs:.0f} s after the last send")
print(f"lost {len(lost)}, duplicated {len(duplicated)}")
sys.exit(1 if lost or duplicated else 0)
