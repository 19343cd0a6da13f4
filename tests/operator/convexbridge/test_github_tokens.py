"""GitHub tokens in the three forms a Fondation deployment stores them."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from fondation_operator.convexbridge.github_tokens import TokenError, decode, encrypt

KEY = SecretStr("8f" * 32)
TOKEN = "ghp_" + "A1b2C3d4" * 4


def fondation_encrypt(token: str, key_hex: str, iv: bytes) -> str:
    """What Fondation's web app writes: AES-256-GCM, iv:tag:ciphertext in hex,
    written out here step by step, independently of the module's `encrypt`."""
    sealed = AESGCM(bytes.fromhex(key_hex)).encrypt(iv, token.encode(), None)
    ciphertext, tag = sealed[:-16], sealed[-16:]
    return "enc_v1_" + ":".join(part.hex() for part in (iv, tag, ciphertext))


def test_an_encrypted_token_is_decrypted_with_the_deployments_key() -> None:
    stored = fondation_encrypt(TOKEN, KEY.get_secret_value(), os.urandom(16))
    assert decode(stored, KEY).get_secret_value() == TOKEN
    assert encrypt(TOKEN, KEY, bytes(16)) == fondation_encrypt(
        TOKEN, KEY.get_secret_value(), bytes(16)
    )


def test_obfuscated_and_plain_tokens() -> None:
    obfuscated = "obf_" + base64.b64encode(TOKEN.encode()).decode()
    assert decode(obfuscated, None).get_secret_value() == TOKEN
    assert decode(f"  {TOKEN}\n", None).get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("stored", "key", "why"),
    [
        (fondation_encrypt(TOKEN, "8f" * 32, bytes(16)), None, "ENCRYPTION_KEY is not set"),
        (fondation_encrypt(TOKEN, "11" * 32, bytes(16)), KEY, "does not decrypt"),
        (fondation_encrypt(TOKEN, "8f" * 32, bytes(12)), KEY, "12-byte IV"),
        ("enc_v1_zz:00:00", KEY, "is not <iv hex>"),
        ("enc_v1_" + "00" * 16, KEY, "is not <iv hex>"),
        ("obf_not base64!", None, "not base64"),
        ("obf_" + base64.b64encode(b"\xff\xfe").decode(), None, "not base64 of a text"),
        ("", None, "empty"),
        ("two words", None, "spaces"),
        ("x" * 2000, None, "too long"),
    ],
)
def test_unusable_tokens_are_refused_with_the_reason_not_the_value(
    stored: str, key: SecretStr | None, why: str
) -> None:
    with pytest.raises(TokenError, match=why) as refused:
        decode(stored, key)
    assert TOKEN not in str(refused.value)
    if len(stored) > 8:
        assert stored not in str(refused.value)


def test_a_tampered_ciphertext_is_refused() -> None:
    stored = fondation_encrypt(TOKEN, KEY.get_secret_value(), os.urandom(16))
    flipped = stored[:-2] + ("00" if stored[-2:] != "00" else "11")
    with pytest.raises(TokenError, match="does not decrypt"):
        decode(flipped, KEY)
