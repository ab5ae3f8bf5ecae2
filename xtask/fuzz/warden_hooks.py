"""Schemathesis hooks for `cargo xtask fuzz`: how the fuzzer authenticates.

- Operations that end sessions or change how an account logs in (`POST /logout`,
  `DELETE /users/me`, `PATCH /users/me`, `PUT /users/me/password`, the `sessions` and the
  two-factor operations), and those whose wrong passwords count against the account's
  failed-login budget (`POST /users/me/tokens`)
  act as a brand-new account each time, so that they cannot spoil the cases after them. (For
  `DELETE /admin/users/{id}/sessions`, which could end the admin's own sessions, that account is
  not an admin: the fuzzer sees its 403s.)
- Every other operation acts as the admin that `cargo xtask fuzz` made with
  `warden create-admin`: one account throughout, so that a stateful sequence (create a post,
  then replace it) is one user's, with every scope. It cannot be taken away mid-run: admins
  cannot disable or demote themselves, and the operations that could end its session are the
  ones above.
"""

import os
import threading
import uuid

import requests
import schemathesis

BASE_URL = os.environ["WARDEN_FUZZ_URL"]
ADMIN_EMAIL = os.environ["WARDEN_FUZZ_ADMIN_EMAIL"]
PASSWORD = os.environ["WARDEN_FUZZ_PASSWORD"]

DESTRUCTIVE = {
    ("POST", "/logout"),
    ("DELETE", "/users/me"),
    ("PATCH", "/users/me"),
    ("PUT", "/users/me/password"),
    ("DELETE", "/users/me/sessions"),
    ("DELETE", "/users/me/sessions/{id}"),
    ("DELETE", "/admin/users/{id}/sessions"),
    ("POST", "/users/me/mfa/totp"),
    ("POST", "/users/me/mfa/totp/confirm"),
    ("POST", "/users/me/mfa/totp/disable"),
    ("POST", "/users/me/mfa/recovery-codes"),
    ("POST", "/users/me/tokens"),
}


def _login(email):
    response = requests.post(
        f"{BASE_URL}/login", data={"username": email, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


def _new_account():
    email = f"fuzz-{uuid.uuid4().hex}@example.com"
    response = requests.post(
        f"{BASE_URL}/users", json={"email": email, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return _login(email)


_admin_lock = threading.Lock()
_admin_token = None


def _admin():
    global _admin_token
    with _admin_lock:
        if _admin_token is None:
            _admin_token = _login(ADMIN_EMAIL)
        return _admin_token


@schemathesis.auth(refresh_interval=None)
class WardenAuth:
    def get(self, case, context):
        operation = context.operation
        if (operation.method.upper(), operation.path) in DESTRUCTIVE:
            return _new_account()
        return _admin()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
