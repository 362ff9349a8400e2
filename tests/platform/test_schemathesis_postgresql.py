"""Schemathesis against the generated OpenAPI document, on PostgreSQL (the test and its
set-up are in ``test_schemathesis.py``; this file lets another test worker run it)."""

from __future__ import annotations

import pytest
from flask import Flask
from test_schemathesis import generate, lab_app, shortfalls  # noqa: F401  (lab_app: the fixture)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_generated_requests_conform_to_the_document_on_postgresql(
    lab_app: Flask,  # noqa: F811
    db_url: str,
    request: pytest.FixtureRequest,
) -> None:
    admin, clerk = generate(lab_app, db_url, request)
    assert not shortfalls(admin, clerk), shortfalls(admin, clerk)
