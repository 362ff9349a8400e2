"""Where the bytes of attachments live: a folder, one file per distinct content, named by
its SHA-256 (``ab/abcdef…``). Two uploads of one file share one copy; a file is written
under a temporary name and moved into place, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FileStore:
    """Content-addressed files under ``root`` (created when first written to).

    >>> store = FileStore(Path("instance/attachments"))
    >>> digest = store.put(b"hello")
    >>> store.read(digest)
    b'hello'
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        if not HEX64.match(digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Keep ``data``; its SHA-256, by which it is read again."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()
