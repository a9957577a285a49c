"""Print .env.example with every required empty secret filled with a fresh random value.

    python3 docker/new_env.py > .env && chmod 600 .env

Standard library only (runs on any host with Python 3.9+, before anything is installed).
Values are URL-safe (they go into connection URLs); the Fernet key is 32 random bytes,
URL-safe base64, as ``cryptography.fernet.Fernet.generate_key()`` makes it. It writes to
stdout only: an existing .env is never touched.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def secret_for(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(32)


def filled(example: str) -> str:
    """``example`` with each ``NAME=`` line (an empty value) given a secret."""
    out = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#") and value.strip() == "" and name.strip():
            line = f"{name}={secret_for(name.strip())}"
        out.append(line)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    example = Path(argv[0]) if argv else EXAMPLE
    sys.stdout.write(filled(example.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
