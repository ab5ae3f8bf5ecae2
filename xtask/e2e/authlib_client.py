"""Warden through a standard OAuth2 client library, Authlib (with requests), rather than our own
code (contract section 13): discovery from the RFC 8414 metadata, the password and refresh
grants, introspection (RFC 7662) by a resource server holding `tokens:introspect`, and
revocation (RFC 7009).

Environment: WARDEN_E2E_URL (the server), WARDEN_E2E_ISSUER (its JWT_ISSUER),
WARDEN_E2E_ADMIN (an admin's email; the password is WARDEN_E2E_PASSWORD).
"""

import os
import uuid

# The server under test speaks plain http on loopback.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

import requests  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata  # noqa: E402

BASE = os.environ["WARDEN_E2E_URL"]
PASSWORD = os.environ["WARDEN_E2E_PASSWORD"]


class Bearer(requests.auth.AuthBase):
    """The resource server's own credentials at the introspection endpoint."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def check(condition, what):
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


# Discovery.
metadata = AuthorizationServerMetadata(
    requests.get(f"{BASE}/.well-known/oauth-authorization-server", timeout=10).json()
)
for validate in (
    metadata.validate_issuer,
    metadata.validate_token_endpoint,
    metadata.validate_revocation_endpoint,
    metadata.validate_introspection_endpoint,
    metadata.validate_jwks_uri,
    metadata.validate_grant_types_supported,
    metadata.validate_scopes_supported,
    metadata.validate_token_endpoint_auth_methods_supported,
    metadata.validate_revocation_endpoint_auth_methods_supported,
):
    # (Not validate_response_types_supported: Authlib wants a non-empty list, and Warden has
    # no authorization endpoint, so it lists none, as contract section 13 says.)
    validate()
check(metadata["issuer"] == os.environ["WARDEN_E2E_ISSUER"], "the metadata validates, with our issuer")
check(metadata["token_endpoint"] == f"{BASE}/login", "the token endpoint is absolute")

# A user logs in through the discovered token endpoint, with the password grant.
email = f"authlib-{uuid.uuid4().hex[:8]}@example.com"
created = requests.post(f"{BASE}/users", json={"email": email, "password": PASSWORD}, timeout=10)
check(created.status_code == 201, "registration")
client = OAuth2Session(
    client_id="authlib-app",
    token_endpoint_auth_method="none",
    revocation_endpoint_auth_method="none",
    scope="profile posts:read",
)
token = client.fetch_token(metadata["token_endpoint"], username=email, password=PASSWORD)
check(token["token_type"] == "bearer" and token["scope"] == "profile posts:read", "password grant")
me = client.get(f"{BASE}/users/me", timeout=10)
check(me.status_code == 200 and me.json()["email"] == email, "the token works")
token = client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
check(client.get(f"{BASE}/users/me", timeout=10).status_code == 200, "refresh grant")

# A resource server introspects it.
server = OAuth2Session(client_id="resource-server", token_endpoint_auth_method="none")
server_token = server.fetch_token(
    metadata["token_endpoint"],
    username=os.environ["WARDEN_E2E_ADMIN"],
    password=PASSWORD,
    scope="tokens:introspect",
)
credentials = Bearer(server_token["access_token"])
info = server.introspect_token(
    metadata["introspection_endpoint"], token=token["access_token"], auth=credentials
).json()
check(
    info["active"] is True
    and info["username"] == email
    and info["client_id"] == "authlib-app"
    and info["scope"] == "profile posts:read"
    and info["iss"] == metadata["issuer"],
    f"introspection of an active token: {info}",
)

# The user revokes the refresh token: the whole login ends, access token included.
revoked = client.revoke_token(
    metadata["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token"
)
check(revoked.status_code == 200, "revocation")
info = server.introspect_token(
    metadata["introspection_endpoint"], token=token["access_token"], auth=credentials
).json()
check(info == {"active": False}, f"the revoked login's access token is inactive: {info}")
check(client.get(f"{BASE}/users/me", timeout=10).status_code == 401, "and refused")
print("authlib interoperability passed")
