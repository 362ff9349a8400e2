"""The running platform's parts, built once per process from the settings: the database,
the compiled Model, its tables and the services on them. The web app and the CLI share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from engine import Records, Schema, build_schema, connect
from metamodel import Model, load_packages

from .accounts import Accounts


class Runtime:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    @cached_property
    def engine(self) -> Engine:
        return connect(str(self.config["DATABASE_URL"]))

    @cached_property
    def model(self) -> Model:
        paths = [Path(p.strip()) for p in str(self.config["PACKAGES"]).split(",") if p.strip()]
        return load_packages(paths)

    @cached_property
    def schema(self) -> Schema:
        return build_schema(self.model)

    @cached_property
    def records(self) -> Records:
        return Records(self.engine, self.model, schema=self.schema)

    @cached_property
    def accounts(self) -> Accounts:
        seconds = float(self.config.get("TOKEN_CACHE_SECONDS", 5))
        return Accounts(self.schema, token_cache_seconds=seconds)
