"""The cluster's guarantees (issue 12), against two Warden instances (A, B) on one PostgreSQL
behind HAProxy: through the proxy and on each instance directly.

Environment: WARDEN_PROXY, WARDEN_A, WARDEN_B (base URLs). Exits non-zero on the first broken
guarantee, saying which.
"""

import os
import threading
import uuid

from common import PASSWORD, call, login, register, tokens

PROXY, A, B = (os.environ[name] for name in ("WARDEN_PROXY", "WARDEN_A", "WARDEN_B"))
RUN = uuid.uuid4().hex[:8]


def email(name):
    return f"{name}-{RUN}@example.com"


def together(calls):
    """Runs the calls at once (released by one barrier); returns their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, function):
        barrier.wait()
        results[index] = function()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def check(name, condition, detail):
    if not condition:
        raise SystemExit(f"FAILED: {name}: {detail}")
    print(f"ok: {name}")


def tokens_cross_instances():
    register(A, email("ann"))
    for issuer, other in ((A, B), (B, A)):
        grant = tokens(issuer, email("ann"))
        status, _, body = call(other, "GET", "/users/me", token=grant["access_token"])
        check("a token issued by one instance is accepted by the other", status == 200, (status, body))
    grant = tokens(PROXY, email("ann"))
    statuses = [call(PROXY, "GET", "/users/me", token=grant["access_token"])[0] for _ in range(6)]
    check("through the proxy, every instance accepts the token", statuses == [200] * 6, statuses)


def logout_is_seen_everywhere():
    register(B, email("bob"))
    grant = tokens(A, email("bob"))
    token = grant["access_token"]
    check("before logout, B accepts A's token", call(B, "GET", "/users/me", token=token)[0] == 200, "")
    status, _, _ = call(A, "POST", "/logout", token=token)
    check("logout on A", status == 204, status)
    status, headers, body = call(B, "GET", "/users/me", token=token)
    check("after logout on A, the next request on B fails", status == 401, (status, body))
    check("with invalid_token", 'error="invalid_token"' in headers.get("WWW-Authenticate", ""), headers)
    status, _, _ = call(B, "POST", "/login", form={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
    check("and its refresh token is dead on B", status == 400, status)
    status, _, _ = call(PROXY, "GET", "/users/me", token=token)
    check("and through the proxy", status == 401, status)


def one_refresh_wins():
    register(A, email("cat"))
    refresh = tokens(A, email("cat"))["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    results = together([
        (lambda base=base: call(base, "POST", "/login", form=form))
        for base in [A, B] * 5
    ])
    statuses = sorted(status for status, _, _ in results)
    check("ten parallel refreshes of one token over both instances: exactly one succeeds",
          statuses == [200] + [400] * 9, statuses)
    errors = {body["error"] for status, _, body in results if status == 400}
    check("the others get invalid_grant", errors == {"invalid_grant"}, errors)


def failed_login_budget_is_shared():
    register(A, email("dan"))
    statuses = [login(base, email("dan"), "wrong guess")[0] for base in [A, B, A, B, A]]
    check("five failures, alternating instances, are refused as wrong", statuses == [400] * 5, statuses)
    for name, base in (("A", A), ("B", B), ("the proxy", PROXY)):
        status, headers, body = login(base, email("dan"), "wrong guess")
        check(f"the sixth failure is 429 on {name}", status == 429, (status, body))
        check(f"with Retry-After on {name}", int(headers.get("Retry-After", "0")) > 0, headers)
    status, _, _ = login(B, email("dan"), PASSWORD)
    check("even the right password waits (the budget is per username)", status == 429, status)
    # Another username is not affected.
    register(B, email("eve"))
    check("another username logs in", login(A, email("eve"))[0] == 200, "")


def one_registration_wins():
    for attempt in range(5):
        address = email(f"race{attempt}")
        results = together([
            (lambda base=base: call(base, "POST", "/users", json_body={"email": address, "password": PASSWORD}))
            for base in (A, B)
        ])
        statuses = sorted(status for status, _, _ in results)
        check(f"a registration race across instances ({address}): one 201, one 409",
              statuses == [201, 409], statuses)
    status, _, body = call(PROXY, "POST", "/users", json_body={"email": email("race0").upper(), "password": PASSWORD})
    check("and the email is taken, whatever its case, through the proxy", status == 409, (status, body))


tokens_cross_instances()
logout_is_seen_everywhere()
one_refresh_wins()
failed_login_budget_is_shared()
one_registration_wins()
print("cluster checks passed")
