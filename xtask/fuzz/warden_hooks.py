"""Schemathesis hooks for `cargo xtask fuzz`: how the fuzzer authenticates.

- Operations under `/admin` act as the admin that `cargo xtask fuzz` made with
  `warden create-admin`.
- Operations that end sessions or change how an account logs in (`POST /logout`,
  `DELETE /users/me`, `PATCH /users/me`, `PUT /users/me/password`) act as a brand-new account
  each time, so that they cannot spoil the cases after them.
- Every other operation acts as one ordinary account, so that a stateful sequence (create a
  post, then replace it) is one user's. Should an admin case have disabled or deleted that
  account, another one takes its place.
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
}


def _login(email):
    response = requests.post(
        f"{BASE_URL}/login", data={"username": email, "password": PASSWORD}, timeout=30
    )
    return response.json()["access_token"] if response.status_code == 200 else None


def _new_account():
    email = f"fuzz-{uuid.uuid4().hex}@example.com"
    response = requests.post(
        f"{BASE_URL}/users", json={"email": email, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return email, _login(email)


class _OrdinaryAccount:
    def __init__(self):
        self.lock = threading.Lock()
        self.email = None
        self.token = None

    def token_for_a_case(self):
        with self.lock:
            if self.token is not None and self._still_works():
                return self.token
            self.token = _login(self.email) if self.email else None
            if self.token is None:
                self.email, self.token = _new_account()
            return self.token

    def _still_works(self):
        response = requests.get(
            f"{BASE_URL}/users/me", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        return response.status_code == 200


_ordinary = _OrdinaryAccount()


@schemathesis.auth(refresh_interval=None)
class WardenAuth:
    def get(self, case, context):
        operation = context.operation
        if operation.path.startswith("/admin"):
            return _login(ADMIN_EMAIL)
        if (operation.method.upper(), operation.path) in DESTRUCTIVE:
            return _new_account()[1]
        return _ordinary.token_for_a_case()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
