"""Encryption of stored secrets (custom models' API keys, webhook signing secrets) with `CONVEYOR_SECRET_KEY`.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key derived from the setting by
SHA-256, so any long random string works as the secret. Changing the secret makes the stored keys
unreadable: their custom models then fail with a clear error until their `api_key` is set again, and
webhook deliveries of jobs stored before the change fail their attempts with the same error.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from app.errors import BadRequest

SECRET_KEY_SETTING = "CONVEYOR_SECRET_KEY"
_DOMAIN = b"conveyor-secret-key:v1:"


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted with the configured key."""


class SecretBox:
    def __init__(self, secret: str) -> None:
        digest = hashlib.sha256(_DOMAIN + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretUnreadable(f"the stored secret cannot be decrypted: was {SECRET_KEY_SETTING} changed?") from exc


def secret_box(secret: str) -> SecretBox | None:
    """A box for the configured secret, or None when none is configured."""
    return SecretBox(secret) if secret else None


def require_box(box: SecretBox | None, field_name: str) -> SecretBox:
    """The box, or a 400 telling the operator what to configure before a secret can be stored."""
    if box is None:
        raise BadRequest(
            f"cannot store a secret: the server has no {SECRET_KEY_SETTING} configured; set it "
            f"(any long random string, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) "
            "for the API and every worker, or leave this field out",
            field_name=field_name,
        )
    return box


def generate_secret_key() -> str:
    return secrets.token_urlsafe(32)


def load_or_create_secret_key(data_dir: Path) -> str:
    """The embedded mode's secret, kept beside its database so stored keys stay readable across restarts."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = generate_secret_key()
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret
