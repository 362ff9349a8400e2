"""What an upload is and what it is called: content types sniffed from the bytes, file
names made safe to keep and to send back, and the ``accept`` patterns of a file field.

>>> sniff(b"%PDF-1.7 ...", "scan.PDF")
'application/pdf'
>>> clean_filename("../../etc/合同 扫描件.pdf")
'合同 扫描件.pdf'
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

#: Leading bytes of the formats people attach, and their content types.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
)

#: Formats that are zip or OLE containers, told apart by their extension.
CONTAINERS = {
    "application/zip": {
        ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ".odt": "application/vnd.oasis.opendocument.text",
        ".ods": "application/vnd.oasis.opendocument.spreadsheet",
        ".ofd": "application/ofd",
    },
    "application/x-ole-storage": {
        ".doc": "application/msword",
        ".xls": "application/vnd.ms-excel",
        ".ppt": "application/vnd.ms-powerpoint",
    },
}

#: Text types a browser would run or render as a page: never sent back as themselves.
ACTIVE = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "text/javascript",
        "application/javascript",
    }
)

MARKUP = re.compile(rb"^\s*(?:<\?xml|<!doctype|<html|<head|<body|<script|<svg|<iframe|<!--)", re.I)
MAX_NAME = 200


def extension(filename: str) -> str:
    return PurePosixPath(filename.lower()).suffix


def sniff(data: bytes, filename: str) -> str:
    """The content type of ``data``, read from its bytes; the name only tells apart the
    formats one container holds (``.docx`` and ``.xlsx`` are both zip files) and names
    the kind of plain text. What the client claimed is never trusted."""
    head = data[:512]
    for magic, found in SIGNATURES:
        if head.startswith(magic):
            return CONTAINERS.get(found, {}).get(extension(filename), found)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if b"\x00" in head or not _is_text(data[:4096]):
        return "application/octet-stream"
    if MARKUP.match(head):
        return "image/svg+xml" if b"<svg" in head.lower() else "text/html"
    guessed = mimetypes.guess_type(filename)[0] or ""
    if guessed in ("text/csv", "application/json", "text/markdown", "text/calendar"):
        return guessed
    return "text/plain"


def _is_text(sample: bytes) -> bool:
    for encoding in ("utf-8", "gb18030", "shift_jis"):
        try:
            sample.decode(encoding)
        except UnicodeDecodeError as exc:  # a character cut at the sample's end is fine
            if exc.start >= len(sample) - 4:
                return True
            continue
        return True
    return False


def served_type(content_type: str) -> str:
    """The Content-Type a download is sent with: active content as plain bytes."""
    return "application/octet-stream" if content_type in ACTIVE else content_type


def clean_filename(name: str) -> str:
    """A file name to keep and show: no folders, no control or invisible characters
    (a right-to-left override can disguise ``exe.pdf``), no leading dots; Chinese,
    Japanese and other letters kept; at most 200 characters, keeping the extension."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if ch.isspace() else ch for ch in name if not _invisible(ch))
    name = re.sub(" +", " ", name).strip().lstrip(".").strip()
    if len(name) > MAX_NAME:
        suffix = extension(name)[:20]
        name = name[: MAX_NAME - len(suffix)].rstrip() + suffix
    return name or "file"


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") and not ch.isspace()


def ascii_filename(name: str) -> str:
    """The name for ``Content-Disposition``'s plain ``filename=`` (old clients): ASCII,
    no quotes or backslashes; the real one goes in ``filename*`` (RFC 5987)."""
    plain = "".join(ch if " " <= ch < "\x7f" and ch not in '"\\' else "_" for ch in name)
    return plain or "file"


def accepts(patterns: Iterable[str], content_type: str, filename: str) -> bool:
    """Whether a file field's ``accept`` list takes a file: ``application/pdf``,
    ``image/*`` or an extension (``.ofd``), as in HTML's ``accept`` attribute."""
    listed = [p.strip().lower() for p in patterns if p.strip()]
    if not listed:
        return True
    suffix = extension(filename)
    for pattern in listed:
        if pattern.startswith("."):
            if suffix == pattern:
                return True
        elif pattern.endswith("/*"):
            if content_type.startswith(pattern[:-1]):
                return True
        elif content_type == pattern:
            return True
    return False


def size_text(size: int) -> str:
    """``10 MiB``, ``512 KiB``, ``300 bytes``."""
    for unit, power in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << power:
            value = size / (1 << power)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"
