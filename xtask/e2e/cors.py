"""`cargo xtask e2e`, CORS: a browser front end on another origin uses Warden.

A page served from http://127.0.0.1:ALLOWED (on Warden's CORS_ALLOWED_ORIGINS) logs in with
fetch and calls GET /users/me with the token, its own X-Request-Id and a W3C traceparent: the
browser sends a preflight for that call, and both must succeed. The page then reads what the
contract exposes (section 7): the X-Request-Id of the answer, the WWW-Authenticate of a 401,
and the Retry-After of a 429 after wrong passwords. The same page served from
http://127.0.0.1:OTHER (not on the list) must be stopped by the browser: Warden answers it, but
without Access-Control-Allow-Origin.
"""

import os
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from playwright.sync_api import sync_playwright

API = os.environ["WARDEN_E2E_URL"]
CHROMIUM = os.environ["WARDEN_E2E_CHROMIUM"]
ALLOWED = int(os.environ["WARDEN_E2E_ALLOWED_PORT"])
OTHER = int(os.environ["WARDEN_E2E_OTHER_PORT"])
PASSWORD = "correct horse battery"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

PAGE = """<!doctype html><title>starting</title><script>
(async () => {
  try {
    const login = await fetch("%(api)s/login", {
      method: "POST",
      headers: {"Content-Type": "application/x-www-form-urlencoded"},
      body: "username=%(username)s&password=%(password)s",
    });
    const token = (await login.json()).access_token;
    const me = await fetch("%(api)s/users/me", {headers: {
      "Authorization": "Bearer " + token,
      "X-Request-Id": "e2e-cors-request",
      "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }});
    const email = (await me.json()).email;
    const refused = await fetch("%(api)s/users/me", {headers: {"Authorization": "Bearer not-a-token"}});
    let retryAfter = null;
    for (let i = 0; i < 10 && retryAfter === null; i++) {
      const wrong = await fetch("%(api)s/login", {
        method: "POST",
        headers: {"Content-Type": "application/x-www-form-urlencoded"},
        body: "username=%(throttled)s&password=wrong+password",
      });
      if (wrong.status === 429) retryAfter = wrong.headers.get("Retry-After");
    }
    document.title = "answered " + me.status + " " + email
      + " id=" + me.headers.get("X-Request-Id")
      + " challenge=" + refused.status + " " + (refused.headers.get("WWW-Authenticate") || "none").split(" ")[0]
      + " retry-after=" + retryAfter;
  } catch (error) {
    document.title = "blocked: " + error;
  }
})();
</script>"""


def serve(port, page):
    class Front(BaseHTTPRequestHandler):
        def do_GET(self):
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Front)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    email = f"cors-{uuid.uuid4().hex[:8]}@example.com"
    requests.post(
        f"{API}/users", json={"email": email, "password": PASSWORD}, timeout=30
    ).raise_for_status()
    page = PAGE % {
        "api": API,
        "username": email.replace("@", "%40"),
        "password": PASSWORD.replace(" ", "+"),
        "throttled": f"throttled-{uuid.uuid4().hex[:8]}%40example.com",
    }
    servers = [serve(ALLOWED, page), serve(OTHER, page)]
    titles = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for port in (ALLOWED, OTHER):
                tab = browser.new_page()
                tab.goto(f"http://127.0.0.1:{port}/")
                tab.wait_for_function("document.title !== 'starting'", timeout=15000)
                titles[port] = tab.title()
        finally:
            browser.close()
            for server in servers:
                server.shutdown()

    answered = titles[ALLOWED]
    expected = f"answered 200 {email} id=e2e-cors-request challenge=401 Bearer retry-after="
    retry_after = answered.removeprefix(expected)
    if not answered.startswith(expected) or not retry_after.isdigit():
        sys.exit(f"from the allowed origin: {answered!r}")
    if not titles[OTHER].startswith("blocked"):
        sys.exit(f"from an origin not on the list: {titles[OTHER]!r}")
    print(f"CORS in Chromium: http://127.0.0.1:{ALLOWED} logged in, read /users/me with its "
          f"X-Request-Id and traceparent, and read X-Request-Id, WWW-Authenticate and "
          f"Retry-After ({retry_after} s); http://127.0.0.1:{OTHER} was blocked")


main()
