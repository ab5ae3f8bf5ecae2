"""HTTP helpers for the cluster checks: the standard library only, one connection per request."""

import json
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "correct horse battery"


def call(base, method, path, token=None, json_body=None, form=None, timeout=15):
    """(status, headers, parsed JSON body or None); status 0 when no answer came."""
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, parse(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, parse(error.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
        return 0, {}, {"connection_error": repr(error)}


def parse(raw):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"raw": raw.decode(errors="replace")}


def register(base, email):
    status, _, body = call(base, "POST", "/users", json_body={"email": email, "password": PASSWORD})
    assert status == 201, (email, status, body)
    return body


def login(base, email, password=PASSWORD):
    return call(base, "POST", "/login", form={"username": email, "password": password})


def tokens(base, email):
    status, _, body = login(base, email)
    assert status == 200, (email, status, body)
    return body
