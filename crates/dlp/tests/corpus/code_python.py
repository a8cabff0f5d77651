import base64
import hashlib
import json
import os
import getpass
from dataclasses import dataclass, field
from typing import Optional

OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY")
TOKEN_LIMIT = 128000
DEFAULT_MODEL = "claude-sonnet-4-5"
PAGE_SIZE = 100
API_BASE = "https://api.github.com/repos/acme/demo/issues?state=open&per_page=100&page=2"


@dataclass
class Job:
    job_id: str
    source: str
    sha256: str
    tags: list = field(default_factory=list)
    retries: int = 0


def digest(data: bytes) -> str:
    """Return the hex SHA-256 of data, e.g. 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08."""
    return hashlib.sha256(data).hexdigest()


def encode_payload(obj) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode()


def decode_payload(text: str):
    return json.loads(base64.b64decode(text))


def ask_password(prompt: str = "Password: ") -> Optional[str]:
    password = getpass.getpass(prompt)
    if not password:
        return None
    return password


def connect(url: Optional[str] = None):
    url = url or os.environ.get("DATABASE_URL", "postgresql://localhost:5432/app")
    print(f"connecting to {url.split('@')[-1]}")
    return url


class RateLimiter:
    def __init__(self, per_second: float, burst: int = 10):
        self.per_second = per_second
        self.burst = burst
        self.tokens = burst

    def take(self, n: int = 1) -> bool:
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


if __name__ == "__main__":
    job = Job(job_id="3f2504e0-4f89-11d3-9a0c-0305e82c3301", source="uploads/cat.png", sha256=digest(b"cat"))
    print(encode_payload(job.__dict__))
    print(decode_payload(encode_payload({"ok": True, "count": 3})))
    limiter = RateLimiter(5.0)
    print([limiter.take() for _ in range(12)])
