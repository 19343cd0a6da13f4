"""GitHub tokens as Fondation stores them, back to the token git needs.

A Fondation deployment keeps each user's GitHub token in its `users` table
(`users:getGitHubToken` returns it as stored) in one of three forms:

- `enc_v1_<iv hex>:<auth tag hex>:<ciphertext hex>`: AES-256-GCM with a
  16-byte IV, under the deployment's `ENCRYPTION_KEY` (64 hex characters);
- `obf_<base64>`: the legacy obfuscation, base64 of the token;
- anything else: the token in plain text.

The token comes out as a `SecretStr` and every error message names the form
and what is wrong with it, never the stored value: a log line about a bad
token must not be the token.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

ENCRYPTED_PREFIX = "enc_v1_"
OBFUSCATED_PREFIX = "obf_"
IV_BYTES = 16
TAG_BYTES = 16
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,1024}$")
"""What a GitHub token can be: printable ASCII without spaces, bounded."""


class TokenError(ValueError):
    """The stored token cannot be turned into a usable one; the message says why."""


def decode(stored: str, encryption_key: SecretStr | None) -> SecretStr:
    """The token behind `stored`, in any of Fondation's three forms."""
    stored = stored.strip()
    if stored.startswith(ENCRYPTED_PREFIX):
        token = _decrypt(stored.removeprefix(ENCRYPTED_PREFIX), encryption_key)
    elif stored.startswith(OBFUSCATED_PREFIX):
        try:
            raw = base64.b64decode(stored.removeprefix(OBFUSCATED_PREFIX), validate=True)
            token = raw.decode()
        except (binascii.Error, UnicodeDecodeError):
            raise TokenError("the obf_ token is not base64 of a text") from None
    else:
        token = stored
    if not _TOKEN.match(token):
        raise TokenError("the token is empty, too long or contains spaces or control characters")
    return SecretStr(token)


def _decrypt(body: str, encryption_key: SecretStr | None) -> str:
    if encryption_key is None:
        raise TokenError(
            "the token is encrypted (enc_v1_) and ENCRYPTION_KEY is not set: "
            "give the operator the Fondation deployment's ENCRYPTION_KEY"
        )
    parts = body.split(":")
    if len(parts) != 3 or not all(_HEX.match(part) for part in parts):
        raise TokenError("the enc_v1_ token is not <iv hex>:<auth tag hex>:<ciphertext hex>")
    iv, tag, ciphertext = (bytes.fromhex(part) for part in parts)
    if len(iv) != IV_BYTES or len(tag) != TAG_BYTES:
        raise TokenError(
            f"the enc_v1_ token has a {len(iv)}-byte IV and a {len(tag)}-byte tag "
            f"({IV_BYTES} and {TAG_BYTES} expected)"
        )
    key = bytes.fromhex(encryption_key.get_secret_value())
    try:
        plain = AESGCM(key).decrypt(iv, ciphertext + tag, None)
    except InvalidTag:
        raise TokenError(
            "the enc_v1_ token does not decrypt with ENCRYPTION_KEY "
            "(another deployment's key, or a damaged token)"
        ) from None
    try:
        return plain.decode()
    except UnicodeDecodeError:
        raise TokenError("the enc_v1_ token decrypts to something that is not text") from None


def encrypt(token: str, encryption_key: SecretStr, iv: bytes) -> str:
    """The `enc_v1_` form of `token`, as Fondation writes it (for tests and tools)."""
    key = bytes.fromhex(encryption_key.get_secret_value())
    sealed = AESGCM(key).encrypt(iv, token.encode(), None)
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return f"{ENCRYPTED_PREFIX}{iv.hex()}:{tag.hex()}:{ciphertext.hex()}"
