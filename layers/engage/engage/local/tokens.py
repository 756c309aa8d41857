"""Local sign-in: RS256 JWTs signed with a key kept in the cache, verified as the HTTP API authorizer would."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .dynamodb_local import cache_root

ISSUER = "https://auth.engage.local"
AUDIENCE = "engage-local"
KEY_ID = "engage-local-1"


@lru_cache(maxsize=1)
def _private_key() -> rsa.RSAPrivateKey:
    path = cache_root() / "local-auth" / "signing-key.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(pem)
        path.chmod(0o600)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


def mint(user_id: str, name: str | None = None, ttl_seconds: int = 3600, **claims: Any) -> str:
    """A token for `user_id` like Firebase Auth would issue (sub, iss, aud, iat, exp, optional name)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": user_id, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl_seconds}
    if name:
        payload["name"] = name
    payload.update(claims)
    return jwt.encode(payload, _private_key(), algorithm="RS256", headers={"kid": KEY_ID})


def verify(token: str) -> dict[str, Any]:
    """The token's claims, or jwt.InvalidTokenError (bad signature, expired, wrong issuer/audience, no sub)."""
    return jwt.decode(
        token,
        _private_key().public_key(),
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["sub", "exp", "iat", "iss", "aud"]},
        leeway=0,
    )
