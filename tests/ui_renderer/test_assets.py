"""The front-end asset installer (``ui_renderer.assets``) and its lock manifest.

The installer runs against small tarballs built here — from a folder, or served by a
local HTTP server standing in for the npm registry — so these tests need no network.
Two tests look at the real thing: the files ``./dev`` installed match the lock, and the
lock agrees with registry.npmjs.org (skipped offline, outside CI).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ui_renderer import assets
from ui_renderer.assets import AssetError

CLOSED_PORT_REGISTRY = "http://127.0.0.1:9"  # the discard port: nothing listens there
REQUIRED_NAMES = {"htmx", "echarts", "sortable", "tabler_css", "tabler_js"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


# -- helpers: tarballs, locks, a registry ---------------------------------------------


def make_tarball(files: Mapping[str, bytes], links: Mapping[str, str] | None = None) -> bytes:
    """A gzipped npm-style tarball holding FILES (member name → content) and symlinks."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return out.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def entry(
    name: str, version: str, tarball: bytes, files: Mapping[str, tuple[str, bytes]]
) -> dict[str, Any]:
    """A lock entry for TARBALL; FILES maps member name → (target, expected content)."""
    basename = name.rsplit("/", 1)[-1]
    return {
        "name": name,
        "version": version,
        "license": "MIT",
        "tarball": f"https://registry.npmjs.org/{name}/-/{basename}-{version}.tgz",
        "integrity": sri(tarball),
        "files": [
            {
                "from": source,
                "to": target,
                "sha256": hashlib.sha256(content).hexdigest(),
                "size": len(content),
            }
            for source, (target, content) in files.items()
        ],
    }


def write_lock(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"packages": list(entries)}), encoding="utf-8")
    return path


class Project:
    """A lock, a folder of tarballs and a vendor folder in tmp_path."""

    def __init__(self, root: Path) -> None:
        self.lock = root / "assets.json"
        self.tarballs = root / "tarballs"
        self.vendor = root / "static" / "vendor"
        self.tarballs.mkdir(parents=True)

    def add(self, lock_entry: dict[str, Any], tarball: bytes) -> None:
        basename = lock_entry["tarball"].rsplit("/", 1)[-1]
        (self.tarballs / basename).write_bytes(tarball)

    def install(self, **options: Any) -> list[str]:
        options.setdefault("tarballs", self.tarballs)
        return assets.install(lock_path=self.lock, target=self.vendor, **options)

    def files(self) -> set[str]:
        """Every file under the vendor folder, the stamp included."""
        if not self.vendor.exists():
            return set()
        return {
            p.relative_to(self.vendor).as_posix() for p in self.vendor.rglob("*") if p.is_file()
        }


JS = b"/* lib */ window.lib = 1;\n"
LICENSE = b"MIT License\n"
TOOL_TARBALL = make_tarball(
    {
        "package/dist/lib.min.js": JS,
        "package/dist/lib.js": b"/* not wanted */\n",
        "package/LICENSE": LICENSE,
        "package/package.json": b"{}",
    }
)
TOOL = entry(
    "tool",
    "1.2.3",
    TOOL_TARBALL,
    {
        "package/dist/lib.min.js": ("tool/lib.min.js", JS),
        "package/LICENSE": ("tool/LICENSE", LICENSE),
    },
)
CSS = b".x{color:red}\n"
KIT_TARBALL = make_tarball({"package/dist/css/kit.min.css": CSS})
KIT = entry(
    "@scope/kit",
    "4.5.6",
    KIT_TARBALL,
    {
        "package/dist/css/kit.min.css": ("kit/css/kit.min.css", CSS),
    },
)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.add(TOOL, TOOL_TARBALL)
    project.add(KIT, KIT_TARBALL)
    write_lock(project.lock, TOOL, KIT)
    return project


class Registry:
    """A stand-in for the npm registry on 127.0.0.1: path → (content type, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                body = registry.routes.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def publish(self, name: str, version: str, tarball: bytes, **extra: Any) -> None:
        """Serve NAME@VERSION's tarball and add it to NAME's metadata."""
        basename = name.rsplit("/", 1)[-1]
        path = f"/{name}/-/{basename}-{version}.tgz"
        self.routes[path] = tarball
        metadata_path = "/" + name.replace("/", "%2F")
        metadata = json.loads(self.routes.get(metadata_path, b'{"versions": {}}'))
        metadata["versions"][version] = {
            "version": version,
            "license": "MIT",
            "dist": {"tarball": f"https://registry.npmjs.org{path}", "integrity": sri(tarball)},
        } | extra
        metadata.setdefault("dist-tags", {})["latest"] = version
        self.routes[metadata_path] = json.dumps(metadata).encode()


@pytest.fixture
def registry() -> Iterator[Registry]:
    registry = Registry()
    thread = threading.Thread(target=registry.server.serve_forever, daemon=True)
    thread.start()
    yield registry
    registry.server.shutdown()
    registry.server.server_close()
    thread.join()


# -- install ----------------------------------------------------------------------------


def test_install_extracts_only_the_listed_files(project: Project) -> None:
    written = project.install()

    assert sorted(written) == ["kit/css/kit.min.css", "tool/LICENSE", "tool/lib.min.js"]
    assert project.files() == {*written, ".installed.json"}
    assert (project.vendor / "tool/lib.min.js").read_bytes() == JS
    stamp = json.loads((project.vendor / ".installed.json").read_text())
    assert stamp["packages"] == {"tool": "1.2.3", "@scope/kit": "4.5.6"}
    assert assets.check(lock_path=project.lock, target=project.vendor) == []


def test_install_is_idempotent_and_needs_no_network_when_done(project: Project) -> None:
    project.install()
    before = {p: (project.vendor / p).stat().st_mtime_ns for p in project.files()}

    # no tarballs and no reachable registry: a download would fail
    assert project.install(tarballs=None, registry=CLOSED_PORT_REGISTRY) == []
    assert {p: (project.vendor / p).stat().st_mtime_ns for p in project.files()} == before


def test_install_repairs_a_changed_or_missing_file(project: Project) -> None:
    project.install()
    (project.vendor / "tool/lib.min.js").write_bytes(b"tampered")
    (project.vendor / "tool/LICENSE").unlink()

    problems = assets.check(lock_path=project.lock, target=project.vendor)
    assert "install" in problems[0]
    assert problems[1:] == [
        "changed: vendor/tool/lib.min.js (tool@1.2.3) differs from the lock",
        "missing: vendor/tool/LICENSE (tool@1.2.3)",
    ]
    assert sorted(project.install()) == ["tool/LICENSE", "tool/lib.min.js"]
    assert (project.vendor / "tool/lib.min.js").read_bytes() == JS


def test_install_removes_files_the_lock_no_longer_lists(project: Project) -> None:
    project.install()
    write_lock(project.lock, TOOL)

    assert project.install() == []
    assert project.files() == {"tool/lib.min.js", "tool/LICENSE", ".installed.json"}


def test_integrity_mismatch_is_refused_and_nothing_is_written(project: Project) -> None:
    forged = make_tarball({"package/dist/lib.min.js": b"evil()", "package/LICENSE": LICENSE})
    (project.tarballs / "tool-1.2.3.tgz").write_bytes(forged)

    with pytest.raises(AssetError, match=r"integrity check failed for tool@1\.2\.3"):
        project.install()
    assert project.files() == set()  # not even @scope/kit, whose tarball was fine
    assert list(project.vendor.iterdir()) == []  # nor the temporary folder


def test_a_file_differing_from_the_lock_digest_is_refused(project: Project) -> None:
    bad = dict(TOOL, files=[dict(TOOL["files"][0], sha256="0" * 64), TOOL["files"][1]])
    write_lock(project.lock, KIT, bad)

    with pytest.raises(AssetError, match="differs from the lock's sha256"):
        project.install()
    assert project.files() == set()


@pytest.mark.parametrize("member", ["package/../../evil.js", "/etc/evil.js", "../evil.js"])
def test_a_tarball_with_a_path_traversal_is_refused(tmp_path: Path, member: str) -> None:
    project = Project(tmp_path / "p")
    tarball = make_tarball({"package/dist/lib.min.js": JS, member: b"evil()"})
    hostile = entry("tool", "1.2.3", tarball, {"package/dist/lib.min.js": ("tool/lib.min.js", JS)})
    project.add(hostile, tarball)
    write_lock(project.lock, hostile)

    with pytest.raises(AssetError, match="unsafe path"):
        project.install()
    assert project.files() == set()
    assert [p.name for p in tmp_path.rglob("evil.js")] == []


def test_a_listed_symlink_is_refused(tmp_path: Path) -> None:
    project = Project(tmp_path)
    tarball = make_tarball({}, links={"package/dist/lib.min.js": "/etc/passwd"})
    lock_entry = entry(
        "tool", "1.2.3", tarball, {"package/dist/lib.min.js": ("tool/lib.min.js", JS)}
    )
    project.add(lock_entry, tarball)
    write_lock(project.lock, lock_entry)

    with pytest.raises(AssetError, match="not a regular file"):
        project.install()
    assert project.files() == set()


def test_a_file_missing_from_the_tarball_is_named(project: Project) -> None:
    files = [
        *TOOL["files"],
        dict(TOOL["files"][0], **{"from": "package/dist/gone.js", "to": "tool/gone.js"}),
    ]
    write_lock(project.lock, dict(TOOL, files=files))

    with pytest.raises(AssetError, match=r"tool@1\.2\.3 has no file package/dist/gone\.js"):
        project.install()


def test_install_downloads_from_the_registry_or_a_mirror(
    project: Project, registry: Registry
) -> None:
    registry.publish("tool", "1.2.3", TOOL_TARBALL)
    registry.publish("@scope/kit", "4.5.6", KIT_TARBALL)

    written = project.install(tarballs=None, registry=registry.url)

    assert len(written) == 3
    assert registry.requests == ["/tool/-/tool-1.2.3.tgz", "/@scope/kit/-/kit-4.5.6.tgz"]


def test_offline_is_one_clear_line(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AssetError) as caught:
        project.install(tarballs=None, registry=CLOSED_PORT_REGISTRY)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot download tool@1.2.3 from http://127.0.0.1:9/tool/-/")
    assert "offline?" in message
    assert project.files() == set()

    # the command prints it as one line and exits 1, with no traceback
    monkeypatch.setattr(assets, "LOCK_PATH", project.lock)
    monkeypatch.setattr(assets, "vendor_folder", lambda: project.vendor)
    assert assets.main(["install", "--registry", CLOSED_PORT_REGISTRY]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("assets: error: cannot download tool@1.2.3")
    assert not any("Traceback" in line for line in err)


def test_a_registry_error_status_is_reported(project: Project, registry: Registry) -> None:
    with pytest.raises(AssetError, match="answered 404"):
        project.install(tarballs=None, registry=registry.url)


# -- the lock manifest ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "^1.2.3"}, "not an exact version"),
        ({"version": "latest"}, "not an exact version"),
        ({"integrity": "sha1-" + base64.b64encode(b"x" * 20).decode()}, "must be one sha512"),
        ({"integrity": "sha512-bm90IDY0IGJ5dGVz"}, "must be one sha512"),
        ({"tarball": "http://registry.npmjs.org/tool/-/tool-1.2.3.tgz"}, "not an https:// URL"),
        ({"files": []}, "lists no files"),
        (
            {"files": [{"from": "package/a.js", "to": "../a.js", "sha256": "0" * 64, "size": 1}]},
            r"unsafe path '\.\./a\.js'",
        ),
        (
            {"files": [{"from": "/package/a.js", "to": "a.js", "sha256": "0" * 64, "size": 1}]},
            "unsafe path",
        ),
        (
            {"files": [{"from": "package\\a.js", "to": "a.js", "sha256": "0" * 64, "size": 1}]},
            "unsafe path",
        ),
        ({"files": [{"from": "package/a.js", "to": "a.js", "size": 1}]}, "'sha256' is missing"),
        (
            {
                "files": [
                    {"from": "a", "to": "a", "sha256": "0" * 64, "size": 1, "name": "Bad-Name"}
                ]
            },
            "not snake_case",
        ),
    ],
)
def test_a_malformed_lock_is_refused_with_its_place(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    lock = write_lock(tmp_path / "assets.json", TOOL | change)

    with pytest.raises(AssetError, match=message) as caught:
        assets.read_lock(lock)
    assert str(caught.value).startswith("assets.json: packages[0]")


def test_a_target_used_twice_is_refused(tmp_path: Path) -> None:
    clash = entry(
        "other", "1.0.0", KIT_TARBALL, {"package/dist/css/kit.min.css": ("tool/LICENSE", CSS)}
    )
    with pytest.raises(AssetError, match="target tool/license appears twice"):
        assets.read_lock(write_lock(tmp_path / "assets.json", TOOL, clash))


def test_the_lock_is_well_formed() -> None:
    packages = assets.read_lock()  # raises on anything malformed

    for package in packages:
        assert assets.EXACT_VERSION.match(package.version), package.label
        assert package.integrity.startswith("sha512-"), package.label
        assert len(base64.b64decode(package.integrity[7:])) == 64, package.label
        basename = package.name.rsplit("/", 1)[-1]
        assert package.tarball == (
            f"https://registry.npmjs.org/{package.name}/-/{basename}-{package.version}.tgz"
        )
        assert package.license, package.label
    assert set(assets.assets()) >= REQUIRED_NAMES
    for asset in assets.assets().values():
        assert asset.path.startswith("vendor/")
        assert asset.integrity.startswith("sha256-")


def test_static_path_names_the_file_or_lists_the_names() -> None:
    assert assets.static_path("htmx") == "vendor/htmx/htmx.min.js"
    assert (assets.static_folder() / "vendor").as_posix().endswith("ui_renderer/static/vendor")
    with pytest.raises(KeyError, match="unknown front-end asset 'jquery'; the lock names: "):
        assets.static_path("jquery")


def test_lock_pins_and_bumps_from_the_registry(tmp_path: Path, registry: Registry) -> None:
    old = make_tarball({"package/dist/lib.min.js": b"v1", "package/LICENSE": LICENSE})
    registry.publish("tool", "1.2.3", old)
    registry.publish("tool", "1.3.0", TOOL_TARBALL)
    registry.publish("tool", "1.4.0", TOOL_TARBALL, deprecated="broken")
    registry.publish("tool", "2.0.0", make_tarball({"package/lib.js": b"moved"}))  # latest
    # a maintainer adds a package by hand: name, version and files, no hashes yet
    lock = write_lock(
        tmp_path / "assets.json",
        {
            "name": "tool",
            "version": "1.2.3",
            "files": [{"from": "package/dist/lib.min.js", "to": "tool/lib.min.js", "name": "lib"}],
        },
    )

    [pinned] = assets.lock([], lock_path=lock, registry=registry.url)
    assert (pinned.version, pinned.integrity) == ("1.2.3", sri(old))
    assert pinned.files[0].sha256 == hashlib.sha256(b"v1").hexdigest()

    [bumped] = assets.lock(["tool@1"], lock_path=lock, registry=registry.url)  # newest 1.x
    assert bumped.version == "1.3.0"
    assert bumped.tarball == "https://registry.npmjs.org/tool/-/tool-1.3.0.tgz"
    assert assets.read_lock(lock) == [bumped]  # written, complete

    with pytest.raises(AssetError, match=r"tool@2\.0\.0 has no file package/dist/lib\.min\.js"):
        assets.lock(["tool@latest"], lock_path=lock, registry=registry.url)
    with pytest.raises(AssetError, match=r"tool has no version '9' on the registry"):
        assets.lock(["tool@9"], lock_path=lock, registry=registry.url)
    with pytest.raises(AssetError, match=r"left-pad is not in assets\.json: add it"):
        assets.lock(["left-pad@1.3.0"], lock_path=lock, registry=registry.url)
    assert assets.read_lock(lock) == [bumped]  # failures leave the lock alone


def test_the_installer_imports_only_the_standard_library() -> None:
    """setup.py loads it by path in a build environment that has nothing else."""
    tree = ast.parse(Path(assets.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= sys.stdlib_module_names | {"__future__"}


# -- the real files ---------------------------------------------------------------------


def test_the_installed_files_match_the_lock() -> None:
    """``./dev`` (and CI's from-scratch run) installed every file the lock lists."""
    problems = assets.check()
    if problems and not in_ci() and not (assets.vendor_folder() / assets.STAMP).exists():
        pytest.skip(problems[0] + " (offline? ./dev goes on without them, outside CI)")
    assert problems == []


@pytest.mark.network
def test_the_lock_agrees_with_the_npm_registry() -> None:
    """The pinned tarball URLs and integrities are the registry's own (metadata only)."""
    for package in assets.read_lock():
        url = f"{assets.DEFAULT_REGISTRY}/{package.name.replace('/', '%2F')}/{package.version}"
        try:
            with urllib.request.urlopen(url, timeout=20) as response:
                dist = json.load(response)["dist"]
        except (urllib.error.URLError, OSError) as error:
            if in_ci():
                raise
            pytest.skip(f"the npm registry is not reachable: {error}")
        assert (dist["tarball"], dist["integrity"]) == (package.tarball, package.integrity)
