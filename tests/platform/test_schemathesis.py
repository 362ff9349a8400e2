"""Schemathesis against the generated OpenAPI document: requests generated from it, valid
(positive) and invalid (negative), for every operation, as an admin; the API must never
answer 5xx and every response must be one the document describes (status, content type,
headers, body schema).

The test package uses every field type, so every branch of the generator is exercised.
Generation is derandomized: the same requests every run. Requests on records use the
seeded records' ids and versions half of the time, so updates and deletes succeed too,
not only 404 and 409.

Known bugs in code this test does not own (the engine) answer some requests with a 500;
each is listed in :data:`KNOWN_BUGS` with a reproduction and recognised by the exception
the server logged, so any *other* 5xx still fails the test. Remove an entry when its bug is
fixed: the number of requests that hit each one is in the test's summary (``-rP``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from heddle.app import create_app
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine, make_url

LAB = """\
kind: package
name: lab
label: {en: Lab, zh: 实验室, ja: ラボ}
version: "2.0.0"
locales: [en, zh, ja]
---
kind: entity
name: client
label: {en: Client, zh: 客户, ja: 顧客}
ownable: true
title_field: name
search_fields: [name, email]
fields:
  name: {type: string, required: true, max_length: 80}
  code: {type: autonumber, format: "CL-{YYYY}-{seq:04}"}
  email: {type: email, unique: true}
  phone: {type: phone}
  website: {type: url}
  notes: {type: text}
  grade: {type: choice, options: [A, B, C], default: B}
  tags: {type: multichoice, options: [vip, new, cold]}
  employees: {type: integer, min: 0}
  revenue: {type: decimal, scale: 4}
  credit_limit: {type: money, min: 0}
  discount: {type: percent, min: 0, max: 100}
  active: {type: boolean, default: true}
  since: {type: date, min: "2000-01-01"}
  last_contact: {type: datetime}
  logo: {type: file}
  documents: {type: file, multiple: true}
  manager: {type: user}
  watchers: {type: user, multiple: true}
  region: {type: team}
  parent: {type: reference, to: client, on_delete: set_null}
  invoice_count: {type: rollup, of: invoice, via: client, aggregate: count}
  billed: {type: rollup, of: invoice, via: client, aggregate: sum, field: total}
  average_bill: {type: rollup, of: invoice, via: client, aggregate: avg, field: total}
  double_staff: {type: formula, returns: integer, expression: "employees * 2"}
  big: {type: formula, returns: boolean, expression: "credit_limit >= 1000"}
  first_day: {type: formula, returns: date, expression: "since"}
  touched: {type: formula, returns: datetime, expression: "last_contact"}
  headroom: {type: formula, returns: money, expression: "credit_limit - billed"}
  share: {type: formula, returns: percent, expression: "discount / 2"}
  ratio: {type: formula, returns: decimal, expression: "revenue / 3"}
  grade_text: {type: formula, returns: string, expression: "grade"}
---
kind: entity
name: invoice
label: {en: Invoice, zh: 发票, ja: 請求書}
ownable: true
title_field: number
fields:
  number: {type: autonumber, format: "INV-{seq:05}"}
  client: {type: reference, to: client, required: true, on_delete: cascade}
  status: {type: choice, options: [draft, sent, paid], default: draft}
  issued: {type: date, default: "=today()"}
  due: {type: date}
  lines: {type: children, entity: invoice_line, required: true}
  total: {type: rollup, of: invoice_line, via: invoice, aggregate: sum, field: amount}
  tax: {type: formula, returns: money, expression: "total * 0.1"}
  client_grade: {type: formula, returns: string, expression: "client.grade"}
validations:
  - name: due_after_issue
    rule: "is_empty(due) or due >= issued"
    message: {en: The due date is before the issue date, zh: 到期日早于开票日, ja: 支払期日が発行日より前です}
    fields: [due]
---
kind: entity
name: invoice_line
label: {en: Invoice line, zh: 发票明细, ja: 請求明細}
child: true
title_field: product
fields:
  invoice: {type: reference, to: invoice, required: true, on_delete: cascade}
  product: {type: string, required: true, max_length: 80}
  quantity: {type: decimal, default: 1, min: 0}
  price: {type: money, required: true, min: 0}
  amount: {type: formula, returns: money, expression: "quantity * price"}
"""

PASSWORD = "password123"
# max_examples per operation and generation mode: 26 operations × 55 ≈ 1,430 requests
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 15}
MIN_REQUESTS = 500
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SEEDED = 5  # clients; each with one invoice of two lines
KNOWN_IDS = (1, 2, 3, 4, 5)  # ids in every table the seed fills; versions too


@dataclass(frozen=True)
class KnownBug:
    """A 5xx caused by a bug outside this test's code, recognised by the logged exception."""

    name: str
    exception: str  # the class name of an exception in the logged chain
    message: str  # part of its message
    dialects: frozenset[str]
    reproduction: str

    def matches(self, dialect: str, chain: list[BaseException]) -> bool:
        return dialect in self.dialects and any(
            type(exc).__name__ == self.exception and self.message in str(exc) for exc in chain
        )


# Bugs the run found and that are fixed now (each has a regression test in
# tests/platform/test_api_limits.py): ids and integers beyond their columns, decimals beyond
# their precision, rollup overflow, NUL characters, dates at the calendar's ends, decimals
# written in scientific notation. Add a KnownBug here only with a reproduction.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


# A known bug that does not answer 500: the JSON provider writes decimals with str(), so a
# formula such as quantity * price gives "0E-8" (scientific notation) instead of "0.00000000":
#   POST /api/v1/records/invoice {"client": 1, "lines": [{"product": "p", "quantity": "0",
#   "price": "0"}]} → lines[0].amount == "0E-8"
# Such values are counted and rewritten in plain notation before the response is checked.
SCIENTIFIC = re.compile(r"-?[0-9]+(\.[0-9]+)?E[+-]?[0-9]+")


def plain_decimals(value: Any) -> tuple[Any, int]:
    """``value`` with decimals in scientific notation rewritten, and how many there were."""
    if isinstance(value, str) and SCIENTIFIC.fullmatch(value):
        return format(Decimal(value), "f"), 1
    if isinstance(value, list):
        pairs = [plain_decimals(item) for item in value]
        return [item for item, _ in pairs], sum(n for _, n in pairs)
    if isinstance(value, dict):
        pairs = {key: plain_decimals(item) for key, item in value.items()}
        return {key: item for key, (item, _) in pairs.items()}, sum(n for _, n in pairs.values())
    return value, 0


def without_scientific_decimals(response: Response) -> tuple[Response, int]:
    if "json" not in response.headers.get("content-type", [""])[0] or not response.content:
        return response, 0
    body, found = plain_decimals(json.loads(response.content))
    if not found:
        return response, 0
    content = json.dumps(body).encode()
    headers = {**response.headers, "content-length": [str(len(content))]}
    rewritten = Response(
        status_code=response.status_code, headers=headers, content=content,
        request=response.request, elapsed=response.elapsed, verify=response.verify,
        message=response.message, http_version=response.http_version,
        encoding=response.encoding,
    )  # fmt: skip
    return rewritten, found


class Failures(logging.Handler):
    """Collects the exceptions the app logs as unexpected (the ones it answers with 500)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.exceptions: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.exceptions.append(record.exc_info[1])


def chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


@pytest.fixture
def lab_app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    package = tmp_path / "lab.yaml"
    package.write_text(LAB, encoding="utf-8")
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "PACKAGES": str(package),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test",
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.schema.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        # users and teams 1 to SEEDED, so references to them can be aimed at too
        for n in range(SEEDED):
            name = "root" if n == 0 else f"user{n}"
            runtime.accounts.create_user(conn, name, PASSWORD, ["admin"], team=f"Team {n}")
    yield app
    runtime.engine.dispose()


def fresh_token(app: Flask) -> str:
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        user = runtime.accounts.by_username(conn, "root")
        assert user is not None
        token, _ = runtime.accounts.issue_token(conn, user, days=1)
    return token


def seed(app: Flask, headers: dict[str, str]) -> None:
    client = app.test_client()
    for n in range(SEEDED):
        made = client.post(
            "/api/v1/records/client", headers=headers,
            json={"name": f"Client {n}", "credit_limit": "1000.50", "tags": ["vip"],
                  "since": "2024-02-29", "last_contact": "2024-03-01T09:30:00Z",
                  "employees": 12, "revenue": "10.5", "discount": "5", "watchers": [1]},
        )  # fmt: skip
        assert made.status_code == 201, made.json
        invoice = client.post(
            "/api/v1/records/invoice", headers=headers,
            json={"client": made.json["data"]["id"],
                  "lines": [{"product": "Tea", "quantity": "2", "price": "3.50"},
                            {"product": "Cups", "price": "12"}]},
        )  # fmt: skip
        assert invoice.status_code == 201, invoice.json


def steered(strategy: Any, id_fields: frozenset[str]) -> Any:
    """Half of the cases aim at seeded records: a known id, version and references."""

    def aim(drawn: tuple[Case, bool, int]) -> Case:
        case, aimed, known = drawn
        if not aimed:
            return case
        if "id" in (case.path_parameters or {}):
            case.path_parameters["id"] = known
        if isinstance(case.query, dict) and "version" in case.query:
            case.query["version"] = known
        if isinstance(case.body, dict):
            for name, value in case.body.items():
                if name == "version" or (name in id_fields and isinstance(value, int | float)):
                    case.body[name] = known
                elif name in id_fields and isinstance(value, list):
                    case.body[name] = [known]
        return case

    return st.tuples(strategy, st.booleans(), st.sampled_from(KNOWN_IDS)).map(aim)


class Run:
    """Sends generated requests, counts them and checks every response."""

    def __init__(self, app: Flask, dialect: str) -> None:
        self.app = app
        self.dialect = dialect
        self.admin = {"Authorization": f"Bearer {fresh_token(app)}"}
        self.failures = Failures()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.hits: Counter[str] = Counter()

    def headers(self, operation: APIOperation) -> dict[str, str]:
        if operation.method.upper() == "DELETE" and operation.path == "/auth/token":
            # it revokes the token it is sent with: give it one of its own
            return {"Authorization": f"Bearer {fresh_token(self.app)}"}
        return self.admin

    def check(self, operation: APIOperation, mode: GenerationMode, case: Case) -> None:
        self.failures.exceptions.clear()
        response = case.call(headers=self.headers(operation))
        self.requests[mode.value] += 1
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            for bug in KNOWN_BUGS:
                if any(bug.matches(self.dialect, chain(e)) for e in self.failures.exceptions):
                    self.hits[bug.name] += 1
                    return
        response, rewritten = without_scientific_decimals(response)
        if rewritten:
            self.hits["decimals in scientific notation"] += 1
        case.validate_response(response, checks=CHECKS)

    def operation(self, operation: APIOperation, mode: GenerationMode, strategy: Any) -> None:
        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES[mode],
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        def call(case: Case) -> None:
            self.check(operation, mode, case)

        call()


def test_generated_requests_conform_to_the_document(
    lab_app: Flask, db_url: str, request: pytest.FixtureRequest
) -> None:
    run = Run(lab_app, make_url(db_url).get_backend_name())
    seed(lab_app, run.admin)
    model = lab_app.extensions["heddle"].model
    references = ("reference", "user", "team")
    id_fields = frozenset(
        {"owner_id", "team_id"}
        | {f.name for e in model for f in e.fields.values() if f.type in references}
    )
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", lab_app, headers=run.admin)
    operations = [result.ok() for result in schema.get_all_operations()]
    # deletes last, so the other operations find the seeded records
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    logging.getLogger("heddle.errors").addHandler(run.failures)
    try:
        for operation in operations:
            for mode in EXAMPLES:
                strategy = operation.as_strategy(generation_mode=mode)
                if mode is GenerationMode.POSITIVE:
                    strategy = steered(strategy, id_fields)
                run.operation(operation, mode, strategy)
    finally:
        logging.getLogger("heddle.errors").removeHandler(run.failures)
    summary = {
        "requests": dict(run.requests),
        "statuses": dict(sorted(run.statuses.items())),
        "known_bug_hits": dict(run.hits),
    }
    request.node.user_properties.extend(summary.items())
    print(summary)  # shown with -rP, or when the test fails
    assert run.requests.total() >= MIN_REQUESTS, run.requests
    succeeded = run.statuses[200] + run.statuses[201] + run.statuses[204]
    assert succeeded >= MIN_REQUESTS // 5, run.statuses
