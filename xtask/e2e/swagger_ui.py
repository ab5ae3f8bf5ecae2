"""`cargo xtask e2e`: Swagger UI driven as a person would, in headless Chromium.

A user registers, opens /docs, presses Authorize, logs in with the password flow (Swagger UI
calls /login, with its empty Basic header), and calls GET /users/me with "Try it out": the
answer must be 200 with their account. Then another user, who made a personal access token,
pastes it into Authorize's PersonalAccessToken box and calls GET /users/me the same way (how a
Swagger UI user with a second factor gets in). Throughout, the browser must report nothing
refused by the pages' Content-Security-Policy, and no script error. A screenshot of each end is
left beside the server log.
"""

import os
import sys
import uuid

import requests
from playwright.sync_api import sync_playwright

BASE_URL = os.environ["WARDEN_E2E_URL"]
CHROMIUM = os.environ["WARDEN_E2E_CHROMIUM"]
SCREENSHOT = os.environ["WARDEN_E2E_SCREENSHOT"]
PASSWORD = "correct horse battery"

# The flags this workplace needs for a headless Chromium with no network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


# What the browser reported refusing under the Content-Security-Policy, and script errors.
REFUSED = []


def new_page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.on("console", lambda message: REFUSED.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: REFUSED.append(f"script error: {error}"))
    return page


def register():
    email = f"swagger-{uuid.uuid4().hex[:8]}@example.com"
    requests.post(
        f"{BASE_URL}/users", json={"email": email, "password": PASSWORD}, timeout=30
    ).raise_for_status()
    return email


def personal_token(email):
    """A personal access token of `email`'s, made as a script would."""
    login = requests.post(
        f"{BASE_URL}/login", data={"username": email, "password": PASSWORD}, timeout=30
    )
    login.raise_for_status()
    created = requests.post(
        f"{BASE_URL}/users/me/tokens",
        json={
            "name": "swagger ui",
            "scopes": "profile",
            "expires_in_days": 1,
            "current_password": PASSWORD,
        },
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )
    created.raise_for_status()
    return created.json()["token"]


def call_get_me(page):
    """GET /users/me with "Try it out": its status and body."""
    operation = "#operations-Users-get_me"
    page.click(f"{operation} .opblock-summary")
    page.click(f"{operation} button.try-out__btn")
    page.click(f"{operation} button.execute")
    row = f"{operation} .live-responses-table tbody"
    page.wait_for_selector(row, timeout=15000)
    status = page.inner_text(f"{row} .response-col_status").strip()
    return status, page.inner_text(f"{row} .response-col_description")


def with_password(browser, email):
    page = new_page(browser)
    try:
        page.goto(f"{BASE_URL}/docs")
        page.click("button.authorize", timeout=30000)
        page.fill("input#oauth_username", email)
        page.fill("input#oauth_password", PASSWORD)
        page.click("button.modal-btn.auth.authorize")
        # Swagger UI shows a Logout button once it holds a token.
        page.wait_for_selector("button.modal-btn.auth:has-text('Logout')", timeout=15000)
        page.click("button.btn-done")
        return call_get_me(page)
    finally:
        page.screenshot(path=SCREENSHOT)
        page.close()


def with_personal_token(browser, token):
    page = new_page(browser)
    try:
        page.goto(f"{BASE_URL}/docs")
        page.click("button.authorize", timeout=30000)
        box = page.locator(".auth-container", has_text="PersonalAccessToken")
        box.locator("input").fill(token)
        box.locator("button.modal-btn.auth.authorize").click()
        box.locator("button.modal-btn.auth:has-text('Logout')").wait_for(timeout=15000)
        page.click("button.btn-done")
        return call_get_me(page)
    finally:
        page.screenshot(path=SCREENSHOT.replace(".png", "-token.png"))
        page.close()


def main():
    email = register()
    token_email = register()
    token = personal_token(token_email)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            status, body = with_password(browser, email)
            if status != "200" or email not in body:
                sys.exit(f"GET /users/me from Swagger UI answered {status}: {body[:300]}")
            print(f"Swagger UI: Authorize logged {email} in through /login; "
                  "GET /users/me answered 200")
            status, body = with_personal_token(browser, token)
            if status != "200" or token_email not in body:
                sys.exit(f"GET /users/me with a personal access token from Swagger UI "
                         f"answered {status}: {body[:300]}")
            print(f"Swagger UI: a personal access token of {token_email} pasted into Authorize; "
                  "GET /users/me answered 200")
            if REFUSED:
                sys.exit("Swagger UI's pages were refused something: " + "; ".join(REFUSED))
            print("Swagger UI: nothing refused under its Content-Security-Policy")
        finally:
            browser.close()


main()
