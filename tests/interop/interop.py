"""Tokenmint through authlib (client credentials and refresh at the discovered
token_endpoint) and PyJWT (verification from JWKS). Run by tests/api/drivers/interop.rs, which
starts the server, creates the tenant, client and user, and reads the JSON line printed
last.

Then an admin withdraws the signing key (an emergency): the session refreshes onto the
fresh key, which PyJWKClient fetches on meeting its unknown kid, and the withdrawn key's
token no longer verifies from JWKS. Last, a resource server's events key polls the
session's logout as a security event (RFC 8936), a SET that PyJWT verifies from JWKS.

Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, TENANT, USERNAME, PASSWORD, AUDIENCE,
ADMIN_KEY (an API key with scope admin).
"""

import json
import os

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

env = os.environ
issuer = env["ISSUER"]
audience = env["AUDIENCE"]

metadata = requests.get(issuer + "/.well-known/oauth-authorization-server", timeout=10).json()
token_endpoint = metadata["token_endpoint"]
# PyJWKClient refetches JWKS on an unknown kid, but not within `cooldown_duration` (30 s
# by default) of its last fetch; this script meets the fresh key seconds after its first.
jwks = jwt.PyJWKClient(metadata["jwks_uri"], cooldown_duration=0)


def verify(token):
    key = jwks.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt", header
    return jwt.decode(
        token,
        key.key,
        algorithms=metadata["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "jti"]},
    )


def session(method):
    return OAuth2Session(
        env["CLIENT_ID"],
        env["CLIENT_SECRET"],
        token_endpoint_auth_method=method,
    )


cc = session("client_secret_basic").fetch_token(
    token_endpoint, grant_type="client_credentials", scope="jobs:read"
)
cc_post = session("client_secret_post").fetch_token(
    token_endpoint, grant_type="client_credentials"
)

login = requests.post(
    issuer + "/api/login",
    json={
        "username": env["USERNAME"],
        "password": env["PASSWORD"],
        "tenant": env["TENANT"],
        "client_id": env["CLIENT_ID"],
        "client_secret": env["CLIENT_SECRET"],
    },
    timeout=10,
)
assert login.status_code == 200, login.text
first = login.json()["refresh_token"]
refreshed = session("client_secret_basic").refresh_token(token_endpoint, refresh_token=first)
again = session("client_secret_post").refresh_token(
    token_endpoint, refresh_token=refreshed["refresh_token"]
)

try:
    session("client_secret_basic").refresh_token(token_endpoint, refresh_token="A" * 43)
    unknown_refresh = "accepted"
except OAuthError as e:
    unknown_refresh = e.error

verified = {
    "client_credentials": verify(cc["access_token"]),
    "client_credentials_post": verify(cc_post["access_token"]),
    "refreshed": verify(refreshed["access_token"]),
    "refreshed_again": verify(again["access_token"]),
}

# The emergency: the key that signed everything so far is withdrawn.
withdrawn_kid = jwt.get_unverified_header(again["access_token"])["kid"]
withdrawal = requests.post(
    f"{issuer}/api/admin/signing-keys/{withdrawn_kid}/withdraw",
    headers={"X-API-Key": env["ADMIN_KEY"]},
    json={"reason": "interop: a leaked key"},
    timeout=10,
)
assert withdrawal.status_code == 200, withdrawal.text
after = session("client_secret_basic").refresh_token(
    token_endpoint, refresh_token=again["refresh_token"]
)
after_withdrawal = verify(after["access_token"])
after_withdrawal["kid"] = jwt.get_unverified_header(after["access_token"])["kid"]
try:
    verify(again["access_token"])
    withdrawn_verifies = True
except jwt.PyJWKClientError:
    withdrawn_verifies = False

# A resource server's events key; the session logs out; the SET of its end.
admin = {"X-API-Key": env["ADMIN_KEY"]}
created = requests.post(
    issuer + "/api/admin/api-keys",
    headers=admin,
    json={"name": "resource server", "scopes": ["events"]},
    timeout=10,
)
assert created.status_code == 201, created.text
events_key = created.json()
logout = requests.post(
    issuer + "/api/logout",
    headers={"Authorization": "Bearer " + after["access_token"]},
    json={},
    timeout=10,
)
assert logout.status_code == 204, logout.text
polled = requests.post(
    issuer + "/api/events/poll",
    headers={"X-API-Key": events_key["key"]},
    json={"returnImmediately": True},
    timeout=10,
)
assert polled.status_code == 200, polled.text
sets = []
for jti, set_ in polled.json()["sets"].items():
    header = jwt.get_unverified_header(set_)
    claims = jwt.decode(
        set_,
        jwks.get_signing_key_from_jwt(set_).key,
        algorithms=metadata["id_token_signing_alg_values_supported"],
        audience=events_key["id"],
        issuer=issuer,
        options={"require": ["iat", "jti", "aud", "iss"]},
    )
    assert claims["jti"] == jti
    sets.append({"typ": header["typ"], "events": claims["events"]})

print(
    json.dumps(
        {
            "sets": sets,
            "session_id": jwt.decode(after["access_token"], options={"verify_signature": False})["sid"],
            "withdrawn_kid": withdrawn_kid,
            "after_withdrawal": after_withdrawal,
            "withdrawn_verifies": withdrawn_verifies,
            "token_endpoint": token_endpoint,
            **verified,
            "rotated": refreshed["refresh_token"] != first
            and again["refresh_token"] != refreshed["refresh_token"],
            "expires_in": cc["expires_in"],
            "unknown_refresh": unknown_refresh,
        }
    )
)
