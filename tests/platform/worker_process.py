"""A real ``heddle worker`` for the platform's tests (imported by name: conftest modules
shadow one another)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flask import Flask


def spawn_worker(app: Flask, redis_url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A real ``heddle worker`` on ``app``'s database and packages, its output in ``log``;
    ``env`` adds or overrides settings (``HEDDLE_…``)."""
    environ = {
        **os.environ,
        "HEDDLE_DATABASE_URL": str(
            app.extensions["heddle"].engine.url.render_as_string(hide_password=False)
        ),
        "HEDDLE_PACKAGES": str(app.config["PACKAGES"]),
        "HEDDLE_INSTANCE_PATH": str(log.parent / "instance"),
        "HEDDLE_REDIS_URL": redis_url,
        **env,
    }
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "heddle", "worker"], env=environ, stdout=out, stderr=out
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker: SIGTERM, then SIGKILL if its warm shutdown hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
