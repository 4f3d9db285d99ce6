"""Schemathesis hooks for data-vault: every request is signed with the HMAC scheme
(DESIGN §6, docs/auth.md) over exactly the bytes that go on the wire.

The signature binds the path and raw query as sent and the body's SHA-256, so it is computed
as a `requests` auth on the prepared request, after Schemathesis has serialised everything.
Credentials come from DATA_VAULT_ST_PRINCIPAL and DATA_VAULT_ST_SECRET.
"""

import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import urlsplit

import requests
import schemathesis

PRINCIPAL = os.environ["DATA_VAULT_ST_PRINCIPAL"]
SECRET = os.environ["DATA_VAULT_ST_SECRET"].encode("ascii")


class VaultHmac(requests.auth.AuthBase):
    def __call__(self, request):
        url = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        content_sha256 = hashlib.sha256(body).hexdigest()
        signed = "\n".join(
            [request.method, url.path, url.query, PRINCIPAL, timestamp, nonce, content_sha256]
        )
        request.headers["X-VE-Principal"] = PRINCIPAL
        request.headers["X-VE-Timestamp"] = timestamp
        request.headers["X-VE-Nonce"] = nonce
        request.headers["X-VE-Content-SHA256"] = content_sha256
        request.headers["X-VE-Signature"] = hmac.new(
            SECRET, signed.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        return request


@schemathesis.hook
def before_call(context, case, kwargs):
    kwargs["auth"] = VaultHmac()
