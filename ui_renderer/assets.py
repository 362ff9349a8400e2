"""Front-end libraries (htmx, ECharts, SortableJS, Tabler): pinned, verified, served locally.

The screens load their JavaScript and CSS from ``ui_renderer/static/vendor/``, never from a
CDN, so Heddle works offline and behind a company firewall. Those files are not in git: the
lock manifest ``ui_renderer/assets.json`` pins each npm package's exact version, tarball URL
and integrity (the registry's ``dist.integrity``, sha512), and lists the built files to take
from the tarball with their sha256. ``install`` fetches the tarballs from the npm registry —
no Node.js needed — refuses any whose integrity differs, and unpacks only the listed files.
``./dev`` runs it, and so does the wheel build (``setup.py``), so wheels carry the files.

Commands (``python -m ui_renderer.assets COMMAND``)::

    install [--from DIR] [--registry URL]   fetch, verify and unpack what the lock lists
    check                                   say which files are missing or changed
    lock [NAME[@VERSION]...]                (maintainers) pin or bump packages in the lock

The platform uses the Python API::

    >>> from ui_renderer import assets
    >>> assets.static_path("htmx")            # relative to assets.static_folder()
    'vendor/htmx/htmx.min.js'
    >>> assets.check()                        # [] when every file is installed and intact
    []

This module imports the standard library only: ``setup.py`` loads it by file path during a
wheel build, before any dependency is installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "DEFAULT_REGISTRY",
    "LOCK_PATH",
    "Asset",
    "AssetError",
    "Package",
    "assets",
    "check",
    "install",
    "lock",
    "read_lock",
    "static_folder",
    "static_path",
    "vendor_folder",
]

HERE = Path(__file__).resolve().parent
LOCK_PATH = HERE / "assets.json"
VENDOR = "vendor"  # folder under static_folder() that install fills
STAMP = ".installed.json"  # inside the vendor folder: what install put there
DEFAULT_REGISTRY = "https://registry.npmjs.org"
REGISTRY_VARIABLE = "HEDDLE_NPM_REGISTRY"  # a company mirror of the npm registry
TIMEOUT = 60  # seconds per request
MAX_TARBALL = 64 * 1024 * 1024  # bytes; the biggest pinned one (echarts) is about 12 MB
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


Log = Callable[[str], None]  # where progress messages go


def _quiet(message: str) -> None:
    pass


class AssetError(Exception):
    """Installing, locking or checking the front-end assets failed; the message says why
    and how to fix it (one line, fit for a terminal)."""


@dataclass(frozen=True)
class LockedFile:
    """One file taken from a package's tarball."""

    source: str  # member path in the tarball, e.g. "package/dist/htmx.min.js"
    target: str  # path under the vendor folder, e.g. "htmx/htmx.min.js"
    sha256: str  # hex digest of the file's content ("" while a lock is being written)
    size: int
    name: str = ""  # logical name for static_path(), e.g. "htmx"; "" for licences etc.


@dataclass(frozen=True)
class Package:
    """One npm package of the lock: where its tarball is and what to take from it."""

    name: str
    version: str
    tarball: str
    integrity: str  # Subresource-Integrity string, "sha512-<base64>"
    license: str
    files: tuple[LockedFile, ...]

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Asset:
    """A file the screens load, by logical name (``htmx``, ``tabler_css``...)."""

    name: str
    path: str  # relative to static_folder(), POSIX separators
    package: str
    version: str
    sha256: str

    @property
    def integrity(self) -> str:
        """The file's Subresource-Integrity value, for a ``<script integrity=…>``."""
        return "sha256-" + base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")


# -- the public API the platform uses ---------------------------------------------------


def static_folder() -> Path:
    """The folder to serve as the screens' static files (``ui_renderer/static``)."""
    return HERE / "static"


def vendor_folder() -> Path:
    """Where ``install`` puts the libraries' files: ``static_folder() / "vendor"``."""
    return static_folder() / VENDOR


@lru_cache(maxsize=1)
def assets() -> Mapping[str, Asset]:
    """Every named asset of the lock, by logical name.

    >>> sorted(assets())[:3]
    ['echarts', 'echarts_ja', 'htmx']
    """
    found: dict[str, Asset] = {}
    for package in read_lock():
        for file in package.files:
            if file.name:
                path = f"{VENDOR}/{file.target}"
                found[file.name] = Asset(
                    file.name, path, package.name, package.version, file.sha256
                )
    return found


def static_path(name: str) -> str:
    """The path of asset NAME relative to :func:`static_folder`, for ``url_for``.

    >>> static_path("echarts")
    'vendor/echarts/echarts.min.js'
    """
    try:
        return assets()[name].path
    except KeyError:
        known = ", ".join(sorted(assets()))
        raise KeyError(f"unknown front-end asset {name!r}; the lock names: {known}") from None


def check(
    *, verify: bool = True, lock_path: Path | None = None, target: Path | None = None
) -> list[str]:
    """What is wrong with the installed files, one message each; ``[]`` when all is well.

    VERIFY compares each file's sha256 with the lock (a few milliseconds); without it only
    presence is checked. The first message says how to fix it::

        >>> check()  # doctest: +SKIP
        ['front-end assets are not installed as ui_renderer/assets.json pins them: run
        `python -m ui_renderer.assets install` (or ./dev start)', 'missing:
        vendor/htmx/htmx.min.js (htmx.org@2.0.11)']
    """
    target = vendor_folder() if target is None else target
    try:
        packages = read_lock(lock_path)
    except AssetError as error:
        return [str(error)]
    problems = []
    for package in packages:
        for file in package.files:
            path = target / file.target
            shown = f"{VENDOR}/{file.target} ({package.label})"
            if not path.is_file():
                problems.append(f"missing: {shown}")
            elif verify and _sha256_file(path) != file.sha256:
                problems.append(f"changed: {shown} differs from the lock")
    if problems:
        problems.insert(
            0,
            "front-end assets are not installed as ui_renderer/assets.json pins them: "
            "run `python -m ui_renderer.assets install` (or ./dev start)",
        )
    return problems


# -- the lock manifest ------------------------------------------------------------------


def read_lock(path: Path | None = None, *, partial: bool = False) -> list[Package]:
    """The packages of the lock at PATH, checked; AssetError says what is malformed.

    PATH defaults to the lock beside this module (``LOCK_PATH``). PARTIAL accepts an
    entry without tarball, integrity or digests yet: a maintainer adds a package by hand
    with its name, version and files, then ``lock`` fills in the rest.
    """
    path = LOCK_PATH if path is None else path
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AssetError(f"cannot read the asset lock {path}: {error.strerror}") from None
    except ValueError as error:
        raise AssetError(f"{path}: not valid JSON: {error}") from None
    where = path.name
    entries = _get(document, "packages", list, where)
    packages = [
        _package(entry, f"{where}: packages[{i}]", partial) for i, entry in enumerate(entries)
    ]
    _check_unique(packages, where)
    return packages


def _package(entry: object, where: str, partial: bool) -> Package:
    name = _get(entry, "name", str, where)
    version = _get(entry, "version", str, where)
    if not EXACT_VERSION.match(version):
        raise AssetError(f"{where}: version {version!r} of {name} is not an exact version")
    tarball = _get(entry, "tarball", str, where, "" if partial else None)
    if tarball and not tarball.startswith("https://"):
        raise AssetError(f"{where}: tarball {tarball!r} is not an https:// URL")
    integrity = _get(entry, "integrity", str, where, "" if partial else None)
    if integrity and not _is_sha512(integrity):
        raise AssetError(f"{where}: integrity of {name} must be one sha512-<base64> value")
    files = _get(entry, "files", list, where)
    if not files:
        raise AssetError(f"{where}: {name} lists no files to take from its tarball")
    return Package(
        name=name,
        version=version,
        tarball=tarball,
        integrity=integrity,
        license=_get(entry, "license", str, where, ""),
        files=tuple(_file(f, f"{where}.files[{i}]", partial) for i, f in enumerate(files)),
    )


def _file(entry: object, where: str, partial: bool) -> LockedFile:
    source = _get(entry, "from", str, where)
    target = _get(entry, "to", str, where)
    for value in (source, target):
        if not _is_safe_relative(value):
            raise AssetError(f"{where}: unsafe path {value!r} (relative, no '..', no '\\')")
    sha256 = _get(entry, "sha256", str, where, "" if partial else None)
    if sha256 and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise AssetError(f"{where}: sha256 {sha256!r} is not 64 lowercase hex digits")
    size = _get(entry, "size", int, where, 0 if partial else None)
    name = _get(entry, "name", str, where, "")
    if name and not SAFE_NAME.match(name):
        raise AssetError(f"{where}: asset name {name!r} is not snake_case")
    return LockedFile(source, target, sha256, size, name)


def _check_unique(packages: Sequence[Package], where: str) -> None:
    seen: dict[str, str] = {}
    for package in packages:
        keys = [f"package {package.name}"]
        keys += [f"target {f.target.lower()}" for f in package.files]  # case-blind disks
        keys += [f"asset name {f.name}" for f in package.files if f.name]
        for key in keys:
            if key in seen:
                raise AssetError(f"{where}: {key} appears twice ({seen[key]}, {package.name})")
            seen[key] = package.name


def _get(entry: object, key: str, kind: type, where: str, default: Any = None) -> Any:
    if not isinstance(entry, dict):
        raise AssetError(f"{where}: expected an object")
    if key not in entry:
        if default is not None:
            return default
        raise AssetError(f"{where}: '{key}' is missing")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AssetError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def _is_safe_relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return (
        bool(path)
        and "\\" not in path
        and "\0" not in path
        and not pure.is_absolute()
        and not re.match(r"^[A-Za-z]:", path)
        and all(part not in ("", ".", "..") for part in path.split("/"))
    )


def _is_sha512(integrity: str) -> bool:
    algorithm, _, digest = integrity.partition("-")
    try:
        raw = base64.b64decode(digest, validate=True)
    except ValueError:
        return False
    return algorithm == "sha512" and len(raw) == 64


def write_lock(packages: Sequence[Package], path: Path) -> None:
    """Write PACKAGES as the lock at PATH (stable layout, so diffs show only what changed)."""
    document = {
        "//": [
            "Front-end libraries the screens load, pinned: see docs/deployment.md.",
            "Install: python -m ui_renderer.assets install (./dev does it).",
            "Bump: python -m ui_renderer.assets lock NAME@VERSION (never edit hashes).",
        ],
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "license": p.license,
                "tarball": p.tarball,
                "integrity": p.integrity,
                "files": [
                    {"from": f.source, "to": f.target, "sha256": f.sha256, "size": f.size}
                    | ({"name": f.name} if f.name else {})
                    for f in p.files
                ],
            }
            for p in packages
        ],
    }
    _write_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


# -- install ----------------------------------------------------------------------------


def install(
    *,
    lock_path: Path | None = None,
    target: Path | None = None,
    registry: str | None = None,
    tarballs: Path | None = None,
    log: Log | None = None,
) -> list[str]:
    """Fetch, verify and unpack every file of the lock into TARGET (the vendor folder).

    Idempotent: a file already present with the lock's sha256 is left alone, and a
    package whose files are all present is not downloaded. All or nothing: every needed
    tarball is downloaded and verified and its files unpacked into a temporary folder
    first; only then are they moved into place. Files an earlier install put there that
    the lock no longer lists are removed. Returns the targets written.

    REGISTRY (default ``$HEDDLE_NPM_REGISTRY``) replaces the registry part of the tarball
    URLs, for a company mirror; TARBALLS is a folder of tarballs fetched beforehand (looked
    up by file name, e.g. ``htmx.org-2.0.11.tgz``), for machines without any network.
    """
    packages = read_lock(lock_path)
    target = vendor_folder() if target is None else target
    registry = registry or os.environ.get(REGISTRY_VARIABLE) or DEFAULT_REGISTRY
    say = log or _quiet
    needed = [p for p in packages if any(not _intact(target / f.target, f) for f in p.files)]
    written: list[str] = []
    try:
        if needed:
            written = _install(needed, target, registry, tarballs, say)
        _remove_stale(target, packages)
        _write_stamp(target, packages)
    except OSError as error:  # a full disk, a read-only site-packages...
        raise AssetError(f"cannot write the front-end assets into {target}: {error}") from None
    return written


def _install(
    packages: Sequence[Package], target: Path, registry: str, tarballs: Path | None, say: Log
) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    for leftover in target.glob(".install-*"):  # from an install killed an hour ago
        with contextlib.suppress(OSError):
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=target))
    written = []
    try:
        for package in packages:
            data = _fetch_tarball(package, registry, tarballs, say)
            _verify_integrity(package, data)
            _unpack(package, data, staging)
        for package in packages:
            for file in package.files:
                destination = target / file.target
                if not _intact(destination, file):
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / file.target, destination)
                    written.append(file.target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"installed {len(written)} files of {', '.join(p.label for p in packages)}")
    return written


def _intact(path: Path, file: LockedFile) -> bool:
    try:
        return path.stat().st_size == file.size and _sha256_file(path) == file.sha256
    except OSError:
        return False


def _fetch_tarball(package: Package, registry: str, tarballs: Path | None, say: Log) -> bytes:
    basename = package.tarball.rsplit("/", 1)[-1]
    if tarballs is not None:
        local = tarballs / basename
        try:
            return local.read_bytes()
        except OSError as error:
            raise AssetError(f"cannot read {local} for {package.label}: {error.strerror}") from None
    url = _on_registry(package.tarball, registry)
    say(f"downloading {package.label} from {url}")
    return _download(url, f"{package.label}")


def _on_registry(url: str, registry: str) -> str:
    """URL with its registry part replaced by REGISTRY (a mirror keeps npm's layout)."""
    if url.startswith(DEFAULT_REGISTRY + "/"):
        return registry.rstrip("/") + url[len(DEFAULT_REGISTRY) :]
    return url


def _download(url: str, what: str, accept: str = "application/octet-stream") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "heddle"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            data: bytes = response.read(MAX_TARBALL + 1)
    except urllib.error.HTTPError as error:
        raise AssetError(
            f"cannot download {what}: {url} answered {error.code} {error.reason}"
        ) from None
    except ValueError as error:  # not a URL at all
        raise AssetError(f"cannot download {what}: {error}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise AssetError(
            f"cannot download {what} from {url}: {reason} — offline? Set "
            f"{REGISTRY_VARIABLE} to an npm mirror, HTTPS_PROXY to a proxy, or install "
            "from a wheel (which carries the files)"
        ) from None
    if len(data) > MAX_TARBALL:
        raise AssetError(f"{url} is larger than {MAX_TARBALL // 2**20} MB: refused")
    return data


def _verify_integrity(package: Package, data: bytes) -> None:
    expected = package.integrity.partition("-")[2]
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if not hmac.compare_digest(expected, actual):
        raise AssetError(
            f"integrity check failed for {package.label}: the tarball's sha512 is "
            f"{actual[:16]}…, the lock says {expected[:16]}…; nothing was installed "
            "(a tampered mirror or proxy, or a corrupted download)"
        )


def _unpack(package: Package, data: bytes, staging: Path) -> None:
    """Extract PACKAGE's listed files from the tarball DATA into STAGING, checked.

    Only the listed files are read, by exact member name, and written to paths this
    module builds from the lock: nothing in the tarball chooses where a file lands.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = _members(package, archive)
            for file in package.files:
                content = _read_member(package, archive, members.get(file.source), file)
                destination = staging / file.target
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(content)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise AssetError(f"{package.label}: not a readable tarball: {error}") from None


def _members(package: Package, archive: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The tarball's members by name; a hostile name (``../``, ``/etc``) refuses it all."""
    members = {}
    for member in archive.getmembers():
        name = member.name.removeprefix("./").rstrip("/")
        if not _is_safe_relative(name):
            raise AssetError(
                f"{package.label}: the tarball holds an unsafe path {member.name!r}: refused"
            )
        members[name] = member
    return members


def _read_member(
    package: Package,
    archive: tarfile.TarFile,
    member: tarfile.TarInfo | None,
    file: LockedFile,
) -> bytes:
    if member is None:
        raise AssetError(f"{package.label} has no file {file.source}: fix its files in the lock")
    if not member.isreg():  # a link could point anywhere
        raise AssetError(f"{package.label}: {file.source} is not a regular file: refused")
    source = archive.extractfile(member)
    assert source is not None  # a regular file always has content
    content = source.read()
    if file.sha256 and hashlib.sha256(content).hexdigest() != file.sha256:
        raise AssetError(f"{package.label}: {file.source} differs from the lock's sha256")
    return content


def _remove_stale(target: Path, packages: Sequence[Package]) -> None:
    """Remove files an earlier install wrote that the lock no longer lists."""
    listed = {f.target for p in packages for f in p.files}
    for old in _read_stamp(target).get("files", []):
        if isinstance(old, str) and old not in listed and _is_safe_relative(old):
            (target / old).unlink(missing_ok=True)


def _read_stamp(target: Path) -> dict[str, Any]:
    try:
        stamp = json.loads((target / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _write_stamp(target: Path, packages: Sequence[Package]) -> None:
    stamp = {
        "packages": {p.name: p.version for p in packages},
        "files": sorted(f.target for p in packages for f in p.files),
    }
    text = json.dumps(stamp, indent=2) + "\n"
    target.mkdir(parents=True, exist_ok=True)
    if (target / STAMP).is_file() and (target / STAMP).read_text(encoding="utf-8") == text:
        return
    _write_atomic(target / STAMP, text)


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the lock ships in wheels
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- lock: pin or bump packages (maintainers) -------------------------------------------


def lock(
    requests: Iterable[str] = (),
    *,
    lock_path: Path | None = None,
    registry: str | None = None,
    log: Log | None = None,
) -> list[Package]:
    """Pin packages in the lock from the registry's metadata, and write it.

    Each request is ``NAME`` (keep its version: refresh its tarball, integrity and
    digests), ``NAME@1.2.3`` (that version), ``NAME@2`` or ``NAME@2.0`` (the newest
    release of that line) or ``NAME@latest`` (a dist-tag). No request refreshes every
    package. Each tarball is downloaded, verified against the registry's sha512 and
    searched for the listed files, whose sha256 and size are recorded: a bump that moved
    a file fails here, not on a user's machine. A package is added by writing its name,
    version and files into the lock by hand, then running ``lock NAME``.
    """
    lock_path = LOCK_PATH if lock_path is None else lock_path
    packages = read_lock(lock_path, partial=True)
    by_name = {p.name: p for p in packages}
    registry = registry or os.environ.get(REGISTRY_VARIABLE) or DEFAULT_REGISTRY
    say = log or _quiet
    wanted: dict[str, str] = {}
    for request in requests or [p.name for p in packages]:
        name, spec = _split_request(request)
        if name not in by_name:
            raise AssetError(
                f"{name} is not in {lock_path.name}: add it with its version and files "
                "by hand (see the other entries), then run lock again"
            )
        wanted[name] = spec or by_name[name].version
    for name, spec in wanted.items():
        by_name[name] = _pin(by_name[name], spec, registry, say)
    result = [by_name[p.name] for p in packages]
    write_lock(result, lock_path)
    assets.cache_clear()
    return result


def _split_request(request: str) -> tuple[str, str]:
    at = request.find("@", 1)  # a scoped name starts with "@"
    return (request, "") if at < 0 else (request[:at], request[at + 1 :])


def _pin(package: Package, spec: str, registry: str, say: Log) -> Package:
    metadata = _package_metadata(package.name, registry)
    version = _resolve(package.name, spec, metadata)
    entry = metadata["versions"][version]
    dist = entry.get("dist", {})
    integrity = next(
        (i for i in str(dist.get("integrity", "")).split() if i.startswith("sha512-")), ""
    )
    if not _is_sha512(integrity):
        raise AssetError(f"{package.name}@{version} has no sha512 integrity on the registry")
    tarball = str(dist.get("tarball", ""))
    mirror = registry.rstrip("/") + "/"
    if tarball.startswith(mirror):  # the lock names npm's own URLs, whatever the mirror
        tarball = DEFAULT_REGISTRY + "/" + tarball[len(mirror) :]
    tarball = tarball.replace("http://registry.npmjs.org/", DEFAULT_REGISTRY + "/", 1)
    pinned = Package(
        name=package.name,
        version=version,
        tarball=tarball,
        integrity=integrity,
        license=package.license,
        files=tuple(LockedFile(f.source, f.target, "", 0, f.name) for f in package.files),
    )
    was = f" (was {package.version})" if version != package.version else ""
    say(f"locking {pinned.label}{was}")
    data = _download(_on_registry(tarball, registry), pinned.label)
    _verify_integrity(pinned, data)
    with tempfile.TemporaryDirectory() as scratch:
        _unpack(pinned, data, Path(scratch))
        files = tuple(
            LockedFile(
                f.source,
                f.target,
                _sha256_file(Path(scratch) / f.target),
                (Path(scratch) / f.target).stat().st_size,
                f.name,
            )
            for f in pinned.files
        )
    license = _license(data) or str(entry.get("license", "")) or package.license
    return Package(pinned.name, version, tarball, integrity, license, files)


def _license(tarball: bytes) -> str:
    """The SPDX licence its ``package.json`` declares ("" if none), for the lock's readers.

    The registry's abbreviated metadata often leaves it out."""
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as archive:
            member = archive.extractfile("package/package.json")
            manifest = json.loads(member.read()) if member else {}
    except (tarfile.TarError, KeyError, ValueError, EOFError, zlib.error):
        return ""
    license = manifest.get("license", "") if isinstance(manifest, dict) else ""
    if isinstance(license, dict):  # the old {"type": "MIT", "url": ...} form
        license = license.get("type", "")
    return license if isinstance(license, str) else ""


def _package_metadata(name: str, registry: str) -> dict[str, Any]:
    url = f"{registry.rstrip('/')}/{urllib.parse.quote(name, safe='@')}"
    data = _download(url, f"the metadata of {name}", "application/vnd.npm.install-v1+json")
    try:
        metadata = json.loads(data)
    except ValueError:
        raise AssetError(f"{url} did not answer JSON") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("versions"), dict):
        raise AssetError(f"{url} did not answer npm package metadata")
    return metadata


def _resolve(name: str, spec: str, metadata: Mapping[str, Any]) -> str:
    versions: Mapping[str, Any] = metadata["versions"]
    tags: Mapping[str, Any] = metadata.get("dist-tags", {})
    if spec in versions:
        return spec
    if spec in tags and tags[spec] in versions:
        return str(tags[spec])
    if re.fullmatch(r"\d+(\.\d+)?", spec):
        line = [
            v
            for v in versions
            if v.startswith(spec + ".")
            and EXACT_VERSION.match(v)
            and "-" not in v
            and not versions[v].get("deprecated")
        ]
        if line:
            return max(line, key=_version_key)
    raise AssetError(
        f"{name} has no version {spec!r} on the registry (newest: {tags.get('latest', '?')})"
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-")[0])[:3])


# -- command line -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ui_renderer.assets``: install, check or lock; errors on one line."""
    parser = argparse.ArgumentParser(
        prog="python -m ui_renderer.assets",
        description="Heddle's front-end libraries, pinned in ui_renderer/assets.json.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    to_install = commands.add_parser("install", help="fetch, verify and unpack the lock")
    to_install.add_argument(
        "--registry", help=f"npm mirror (default ${REGISTRY_VARIABLE} or {DEFAULT_REGISTRY})"
    )
    to_install.add_argument(
        "--from",
        dest="tarballs",
        type=Path,
        metavar="DIR",
        help="take the tarballs from DIR instead of the network",
    )
    to_install.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing when all is in place"
    )
    commands.add_parser("check", help="list missing or changed files; exit 1 if any")
    to_lock = commands.add_parser("lock", help="pin or bump packages (maintainers)")
    to_lock.add_argument("packages", nargs="*", metavar="NAME[@VERSION]")
    to_lock.add_argument("--registry", help="npm registry to read the metadata from")
    options = parser.parse_args(argv)

    def say(message: str) -> None:
        print(f"assets: {message}", file=sys.stderr)

    try:
        if options.command == "install":
            written = install(registry=options.registry, tarballs=options.tarballs, log=say)
            if not written and not options.quiet:
                say(f"all {sum(len(p.files) for p in read_lock())} files in place")
        elif options.command == "check":
            problems = check()
            for problem in problems:
                print(problem)
            return 1 if problems else 0
        else:
            for package in lock(options.packages, registry=options.registry, log=say):
                size = sum(f.size for f in package.files)
                say(f"{package.label}: {len(package.files)} files, {size / 1024:,.0f} KiB")
    except AssetError as error:
        print(f"assets: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
