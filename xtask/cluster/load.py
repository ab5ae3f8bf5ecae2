"""A bounded load through the proxy during the rolling restart: THREADS clients, each sending
one request at a time (reads, writes, and logins with refreshes), until the file WARDEN_STOP
exists. Every request must succeed: prints the counts as JSON and exits non-zero on any
failure, listing the first ones.

Environment: WARDEN_PROXY, WARDEN_STOP, WARDEN_LOAD_THREADS (default 6).
"""

import json
import os
import sys
import threading
import time
import uuid

from common import call, register, tokens

PROXY, STOP = os.environ["WARDEN_PROXY"], os.environ["WARDEN_STOP"]
THREADS = int(os.environ.get("WARDEN_LOAD_THREADS", "6"))

lock = threading.Lock()
counts = {}
failures = []


def record(operation, status, expected, body):
    with lock:
        counts[operation] = counts.get(operation, 0) + 1
        if status != expected:
            failures.append({"operation": operation, "status": status, "body": body})


def client(index):
    email = f"load{index}-{uuid.uuid4().hex[:8]}@example.com"
    try:
        register(PROXY, email)
        grant = tokens(PROXY, email)
    except AssertionError as error:
        record("set up", 0, 1, repr(error))
        return
    step = 0
    while not os.path.exists(STOP):
        step += 1
        token = grant["access_token"]
        if index == 0 and step % 10 == 0:
            # Logins and refreshes: argon2, and session writes.
            status, _, body = call(PROXY, "POST", "/login", form={"username": email, "password": "correct horse battery"})
            record("login", status, 200, body)
            if status == 200:
                status, _, body = call(PROXY, "POST", "/login", form={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
                record("refresh", status, 200, body)
                if status == 200:
                    grant = body
        elif step % 3 == 0:
            status, _, body = call(PROXY, "POST", "/posts", token=token, json_body={"title": f"post {step}", "content": "under load"})
            record("create post", status, 201, body)
        elif step % 3 == 1:
            status, _, body = call(PROXY, "GET", "/users/me", token=token)
            record("read account", status, 200, body)
        else:
            status, _, body = call(PROXY, "GET", "/posts?limit=5", token=token)
            record("list posts", status, 200, body)


threads = [threading.Thread(target=client, args=(index,)) for index in range(THREADS)]
started = time.monotonic()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
summary = {
    "seconds": round(time.monotonic() - started, 1),
    "requests": sum(counts.values()),
    "by_operation": counts,
    "failed": len(failures),
    "first_failures": failures[:10],
}
print(json.dumps(summary, indent=2))
sys.exit(1 if failures or not counts else 0)
