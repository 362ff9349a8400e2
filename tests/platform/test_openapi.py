"""The OpenAPI document: valid OpenAPI 3.1, one set of schemas per entity, filters, errors,
a view per caller without the fields hidden from them, cached per Model version; and the
Swagger UI page served from the installed assets."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle import openapi
from heddle.app import create_app
from heddle.fieldtypes import JSON_TYPES
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from engine.fieldtypes import STORAGE_TYPES
from metamodel import FIELD_TYPES, load_packages

SHOP = """\
kind: package
name: shop
label: {en: Shop, zh: 商店, ja: ショップ}
version: "1.2.0"
locales: [en, zh, ja]
---
kind: entity
name: customer
label: {en: Customer, zh: 客户, ja: 顧客}
ownable: true
title_field: name
search_fields: [name, email]
fields:
  name:
    type: string
    required: true
    max_length: 100
    label: {en: Customer name, zh: 客户名称, ja: 顧客名}
    help: {en: As on the contract, zh: 与合同一致, ja: 契約書どおり}
  email: {type: email, unique: true}
  phone: {type: phone}
  grade: {type: choice, options: [A, B, C], default: B}
  tags: {type: multichoice, options: [vip, new, cold]}
  credit_limit: {type: money, min: 0}
  discount: {type: percent, min: 0, max: 100}
  since: {type: date}
  last_contact: {type: datetime}
  active: {type: boolean, default: true}
  employees: {type: integer, min: 0}
  internal_rating: {type: integer, min: 1, max: 5}
  account_manager: {type: user}
  order_count: {type: rollup, of: order, via: customer, aggregate: count}
---
kind: entity
name: order
label: {en: Order, zh: 订单, ja: 注文}
ownable: true
title_field: number
fields:
  number: {type: autonumber, format: "SO-{seq:05}"}
  customer: {type: reference, to: customer, required: true, on_delete: restrict}
  status: {type: choice, options: [draft, confirmed, shipped], default: draft}
  lines: {type: children, entity: order_line, required: true}
  total: {type: rollup, of: order_line, via: order, aggregate: sum, field: amount}
  margin: {type: money}
  customer_grade: {type: formula, returns: string, expression: "customer.grade"}
  big: {type: formula, returns: boolean, expression: "total >= 1000"}
---
kind: entity
name: order_line
label: {en: Order line, zh: 订单明细, ja: 注文明細}
child: true
fields:
  order: {type: reference, to: order, required: true, on_delete: cascade}
  product: {type: string, required: true, max_length: 80}
  quantity: {type: integer, default: 1, min: 1}
  price: {type: money, required: true, min: 0}
  amount: {type: formula, returns: money, expression: "quantity * price"}
  cost: {type: money}
---
kind: role
name: clerk
permissions:
  customer:
    read: all
    create: all
    update: own
    fields: {internal_rating: hidden, credit_limit: readonly}
  order: {read: all, create: all, update: all, delete: own, fields: {margin: hidden}}
  order_line: {fields: {cost: hidden}}
---
kind: role
name: auditor
permissions:
  "*": {read: all}
---
kind: role
name: guest
permissions:
  customer: {read: none}
"""

# username → roles
USERS = {
    "root": ["admin"],
    "clara": ["clerk"],
    "otto": ["auditor"],
    "both": ["clerk", "auditor"],
    "gus": ["guest"],
}
# what each role may not see (the oracle, from SHOP)
HIDDEN_FROM_CLERK = {"Customer": "internal_rating", "Order": "margin", "OrderLine": "cost"}


@pytest.fixture
def shop_app(tmp_path: Path) -> Iterator[Flask]:
    package = tmp_path / "shop.yaml"
    package.write_text(SHOP, encoding="utf-8")
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'heddle.db'}",
            "PACKAGES": str(package),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test",
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        for username, roles in USERS.items():
            runtime.accounts.create_user(conn, username, "password123", roles, team="HQ")
    yield app
    runtime.engine.dispose()


@pytest.fixture
def client(shop_app: Flask) -> FlaskClient:
    return shop_app.test_client()


def bearer(app: Flask, username: str) -> dict[str, str]:
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        user = runtime.accounts.by_username(conn, username)
        assert user is not None
        token, _ = runtime.accounts.issue_token(conn, user, days=1)
    return {"Authorization": f"Bearer {token}"}


def document(client: FlaskClient, username: str | None = None) -> dict[str, Any]:
    headers = bearer(client.application, username) if username else {}
    response = client.get("/api/v1/openapi.json", headers=headers)
    assert response.status_code == 200, response.json
    assert response.mimetype == "application/json"
    found: dict[str, Any] = response.json
    return found


def tables_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"][name]
    return found


def list_parameters(doc: dict[str, Any], entity: str) -> dict[str, dict[str, Any]]:
    operation = doc["paths"][f"/records/{entity}"]["get"]
    return {p["name"]: p for p in operation["parameters"]}


def conforms(doc: dict[str, Any], name: str, instance: Any) -> None:
    """``instance`` validates against component ``name`` of ``doc`` (refs resolved in it)."""
    jsonschema.Draft202012Validator({**doc, "$ref": f"#/components/schemas/{name}"}).validate(
        instance
    )


# --- validity ------------------------------------------------------------------------------


@pytest.mark.parametrize("username", [None, *USERS])
def test_every_view_is_valid_openapi_3_1(client: FlaskClient, username: str | None) -> None:
    doc = document(client, username)
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    operation_ids = [
        op["operationId"] for path in doc["paths"].values() for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    ]  # fmt: skip
    assert len(operation_ids) == len(set(operation_ids))


def test_the_crm_document_is_valid(tmp_path: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "test", "TESTING": True})
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json
    validate(doc, cls=OpenAPIV31SpecValidator)
    schemas = doc["components"]["schemas"]
    for name in ("Account", "AccountInput", "AccountPatch", "AccountPage", "QuoteLineRowPatch"):
        assert name in schemas
    assert schemas["Quote"]["properties"]["lines"]["items"] == {
        "$ref": "#/components/schemas/QuoteLine"
    }


def test_every_api_route_is_documented(shop_app: Flask, client: FlaskClient) -> None:
    """A route added to the api blueprint must be added to the document too."""
    doc = document(client, "root")
    entities = [e.name for e in shop_app.extensions["heddle"].model]
    for rule in shop_app.url_map.iter_rules():
        if not (rule.endpoint or "").startswith("api."):
            continue
        # the first id of a path is {id}; an id under it keeps its name ({comment_id})
        path = re.sub(r"<int:\w+>", "{id}", rule.rule.removeprefix("/api/v1"), count=1)
        path = re.sub(r"<int:(\w+)>", r"{\1}", path)
        paths = [path.replace("<entity>", e) for e in entities] if "<entity>" in path else [path]
        if "/meta/" in path:
            paths = [path.replace("<entity>", "{entity}")]
        for one in paths:
            assert one in doc["paths"], f"{rule.rule} is not documented"
            documented = {m.upper() for m in doc["paths"][one] if m != "parameters"}
            missing = (rule.methods or set()) - {"HEAD", "OPTIONS"} - documented
            assert not missing, f"{sorted(missing)} {rule.rule} is not documented"


def test_the_registries_cover_every_field_type() -> None:
    assert set(JSON_TYPES) == set(FIELD_TYPES)
    assert {n for n in JSON_TYPES if JSON_TYPES[n].input} == {
        n for n in STORAGE_TYPES if STORAGE_TYPES[n].input
    }


# --- schemas -------------------------------------------------------------------------------


def test_the_record_schema_types_every_field(client: FlaskClient) -> None:
    customer = tables_of(document(client, "root"), "Customer")
    props = customer["properties"]
    assert customer["additionalProperties"] is False
    assert props["name"]["type"] == ["string", "null"]
    assert props["credit_limit"]["type"] == ["string", "null"]
    assert re.fullmatch(props["credit_limit"]["pattern"], "1250.00")
    assert props["since"]["format"] == "date"
    assert props["last_contact"]["format"] == "date-time"
    assert props["grade"]["enum"] == ["A", "B", "C", None]
    assert props["tags"]["items"]["enum"] == ["vip", "new", "cold"]
    assert props["account_manager"]["type"] == ["integer", "null"]
    assert props["order_count"]["type"] == ["integer", "null"]
    assert props["active"]["type"] == ["boolean", "null"]
    # system columns
    assert props["id"]["type"] == "integer" and props["id"]["readOnly"] is True
    assert props["version"]["type"] == "integer"
    assert props["created_at"]["format"] == "date-time"
    assert props["created_by"]["type"] == ["integer", "null"]
    assert {"owner_id", "team_id"} <= set(props)
    assert set(customer["required"]) == set(props)


def test_formulas_children_and_labels(client: FlaskClient) -> None:
    doc = document(client, "root")
    order = tables_of(doc, "Order")["properties"]
    assert order["big"]["type"] == ["boolean", "null"] and order["big"]["readOnly"] is True
    assert order["customer_grade"]["type"] == ["string", "null"]
    assert order["total"]["type"] == ["string", "null"]  # a money rollup, as text
    assert order["lines"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/OrderLine"},
        "description": order["lines"]["description"],
        "title": "Lines",
        "x-field-type": "children",
    }
    assert "lines" not in tables_of(doc, "Order")["required"]
    amount = tables_of(doc, "OrderLine")["properties"]["amount"]
    assert amount["type"] == ["string", "null"] and amount["x-field-type"] == "formula"
    name = tables_of(doc, "Customer")["properties"]["name"]
    assert name["title"] == "Customer name"
    assert name["x-labels"] == {"en": "Customer name", "zh": "客户名称", "ja": "顧客名"}
    assert name["description"] == "As on the contract"
    tags = {tag["name"]: tag for tag in doc["tags"]}
    assert tags["customer"]["x-labels"]["ja"] == "顧客"


def test_input_and_patch_schemas(client: FlaskClient) -> None:
    doc = document(client, "root")
    customer = tables_of(doc, "CustomerInput")
    assert customer["additionalProperties"] is False
    assert customer["required"] == ["name"]
    props = customer["properties"]
    assert props["name"] == {**props["name"], "type": "string", "minLength": 1, "maxLength": 100}
    assert props["grade"]["default"] == "B"
    assert props["discount"]["type"] == ["string", "null"]
    assert re.fullmatch(props["discount"]["pattern"], "12.5")
    assert not re.fullmatch(props["discount"]["pattern"], "-12.5")  # min: 0
    assert not re.fullmatch(props["discount"]["pattern"], "12.505")  # two places at most
    assert props["employees"]["minimum"] == 0
    assert props["employees"]["maximum"] == 2**31 - 1
    assert {"owner_id", "team_id"} <= set(props)
    # computed and system fields are not input
    assert not {"order_count", "id", "version", "created_at"} & set(props)
    order = tables_of(doc, "OrderInput")
    assert order["required"] == ["customer"]
    assert not {"number", "total", "big", "customer_grade"} & set(order["properties"])
    assert order["properties"]["lines"]["items"] == {
        "$ref": "#/components/schemas/OrderLineRowInput"
    }
    assert order["properties"]["lines"]["minItems"] == 1
    row = tables_of(doc, "OrderLineRowInput")
    assert "order" not in row["properties"]  # the parent link is set by the parent
    assert "id" not in row["properties"]  # a new order has no rows to change
    assert row["required"] == ["product", "price"]
    changed = tables_of(doc, "OrderLineRowPatch")
    assert changed["anyOf"] == [{"required": ["id"]}, {"required": ["product", "price"]}]
    assert tables_of(doc, "OrderPatch")["properties"]["lines"]["items"] == {
        "$ref": "#/components/schemas/OrderLineRowPatch"
    }
    patch = tables_of(doc, "CustomerPatch")
    assert patch["required"] == ["version"]
    assert patch["properties"]["name"]["type"] == "string"  # required: never null
    assert "default" not in patch["properties"]["grade"]


def test_examples_conform(client: FlaskClient) -> None:
    doc = document(client, "root")
    conforms(doc, "CustomerInput", {"name": "Acme", "credit_limit": "100.50", "tags": ["vip"]})
    conforms(doc, "OrderInput", {"customer": 1, "lines": [{"product": "Tea", "price": "3"}]})
    conforms(doc, "OrderPatch", {"version": 2, "lines": [{"id": 4}]})
    for bad in ({"name": None}, {"name": "A", "order_count": 3}, {"name": "A", "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            conforms(doc, "CustomerInput", bad)
    with pytest.raises(jsonschema.ValidationError):
        conforms(doc, "OrderPatch", {"status": "draft"})  # no version


def test_the_error_shape_and_responses(client: FlaskClient) -> None:
    doc = document(client, "root")
    conforms(doc, "Error", {"error": {"code": "not_found", "message": "no order with id 9"}})
    conforms(
        doc,
        "Error",
        {
            "error": {
                "code": "validation_failed",
                "message": "the order is not valid",
                "fields": {"customer": ["Missing data for required field."]},
                "details": {"current_version": 3},
            }
        },
    )
    with pytest.raises(jsonschema.ValidationError):
        conforms(doc, "Error", {"error": {"message": "no code"}})
    responses = doc["paths"]["/records/order/{id}"]["patch"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "404", "409", "413", "415", "422"}
    assert responses["409"] == {"$ref": "#/components/responses/Conflict"}
    assert set(doc["paths"]["/auth/token"]["post"]["responses"]) == {
        "201", "400", "401", "413", "415", "429"
    }  # fmt: skip
    conflict = doc["components"]["responses"]["Conflict"]
    assert conflict["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/auth/token"]["post"]["security"] == []


def test_list_parameters(client: FlaskClient) -> None:
    doc = document(client, "root")
    params = list_parameters(doc, "customer")
    for name in ("credit_limit", "credit_limit__gte", "credit_limit__between", "grade__in",
                 "tags__contains", "name__icontains", "since__lt", "id__in", "owner_id",
                 "account_manager__isnull", "created_at__gte"):  # fmt: skip
        assert name in params, name
    assert "grade__gte" not in params  # choices are not ordered
    assert "tags__lt" not in params
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500,
                                         "default": 50}  # fmt: skip
    assert params["grade"]["schema"] == {"type": "string", "enum": ["A", "B", "C"]}
    assert params["grade__in"]["explode"] is False
    assert params["active"]["schema"] == {"type": "boolean"}
    assert "-credit_limit" in params["sort"]["schema"]["items"]["enum"]
    assert "tags" not in params["sort"]["schema"]["items"]["enum"]  # multichoice: no order
    assert params["expand"]["schema"]["items"]["enum"] == [
        "account_manager", "created_by", "updated_by", "owner_id", "team_id"
    ]  # fmt: skip
    assert "name, email" in params["q"]["description"]
    order_params = list_parameters(doc, "order")
    assert "lines" not in order_params  # children are filtered through their own entity
    assert "number" in order_params["q"]["description"]  # no search fields: its title field
    assert "number__startswith" in order_params
    assert "product" in list_parameters(doc, "order_line")["q"]["description"]  # its title
    page = tables_of(doc, "CustomerPage")
    row = page["properties"]["data"]["items"]
    assert row["required"] == ["id"]
    assert row["properties"]["account_manager__title"]["type"] == ["string", "null"]


def test_the_document_describes_real_responses(shop_app: Flask, client: FlaskClient) -> None:
    for username in ("root", "clara"):
        doc = document(client, username)
        headers = bearer(shop_app, username)
        made = client.post(
            "/api/v1/records/customer", headers=headers,
            json={"name": f"Acme {username}", "tags": ["vip"], "since": "2024-02-29"},
        )  # fmt: skip
        assert made.status_code == 201, made.json
        conforms(doc, "Customer", made.json["data"])
        order = client.post(
            "/api/v1/records/order", headers=headers,
            json={"customer": made.json["data"]["id"],
                  "lines": [{"product": "Tea", "quantity": 3, "price": "2.50"}]},
        )  # fmt: skip
        assert order.status_code == 201, order.json
        conforms(doc, "Order", order.json["data"])
        listed = client.get("/api/v1/records/order?expand=customer", headers=headers)
        conforms(doc, "OrderPage", listed.json)
        chosen = client.get("/api/v1/records/customer?fields=name,tags", headers=headers)
        conforms(doc, "CustomerPage", chosen.json)
        error = client.get("/api/v1/records/order/999", headers=headers)
        conforms(doc, "Error", error.json)


# --- views per caller ----------------------------------------------------------------------


def names_in(doc: dict[str, Any], name: str) -> bool:
    return re.search(rf"\b{name}\b", str(doc)) is not None


def test_hidden_fields_are_absent_for_the_role_and_present_for_admin(client: FlaskClient) -> None:
    admin, clerk = document(client, "root"), document(client, "clara")
    for schema, field in HIDDEN_FROM_CLERK.items():
        assert field in tables_of(admin, schema)["properties"]
        assert field not in tables_of(clerk, schema)["properties"]
        assert names_in(admin, field)
        assert not names_in(clerk, field), f"{field} is named in the clerk's document"
    params = list_parameters(clerk, "customer")
    assert "internal_rating" not in params and "internal_rating__gte" not in params
    assert "internal_rating" not in params["fields"]["schema"]["items"]["enum"]
    assert (
        "margin" not in tables_of(clerk, "OrderPage")["properties"]["data"]["items"]["properties"]
    )
    # read-only for the clerk: readable, not writable
    assert "credit_limit" in tables_of(clerk, "Customer")["properties"]
    assert "credit_limit" not in tables_of(clerk, "CustomerInput")["properties"]
    assert "credit_limit" not in tables_of(clerk, "CustomerPatch")["properties"]
    assert "credit_limit" in tables_of(admin, "CustomerPatch")["properties"]
    assert admin["info"]["x-view"] == "admin" and clerk["info"]["x-view"] == "clerk"


def test_operations_follow_the_grants(client: FlaskClient) -> None:
    auditor = document(client, "otto")
    assert set(auditor["paths"]["/records/customer"]) == {"get"}
    assert set(auditor["paths"]["/records/customer/{id}"]) == {"get", "parameters"}
    assert "CustomerInput" not in auditor["components"]["schemas"]
    assert "CustomerPatch" not in auditor["components"]["schemas"]
    clerk = document(client, "clara")
    assert "delete" not in clerk["paths"]["/records/customer/{id}"]
    assert "delete" in clerk["paths"]["/records/order/{id}"]
    entities = clerk["paths"]["/meta/entities/{entity}"]["parameters"][0]["schema"]["enum"]
    assert entities == ["customer", "order", "order_line"]


def test_a_role_that_reads_nothing_gets_the_auth_and_meta_paths(client: FlaskClient) -> None:
    doc = document(client, "gus")
    assert not [path for path in doc["paths"] if path.startswith("/records/")]
    assert "Customer" not in doc["components"]["schemas"]
    assert "/auth/token" in doc["paths"]


def test_several_roles_see_what_any_of_them_shows(client: FlaskClient) -> None:
    # the auditor hides nothing, so a clerk who is also an auditor sees internal_rating
    both = document(client, "both")
    assert "internal_rating" in tables_of(both, "Customer")["properties"]
    assert "margin" in tables_of(both, "Order")["properties"]


def test_anonymous_callers_get_no_field_any_role_hides(client: FlaskClient) -> None:
    anonymous = document(client)
    for field in HIDDEN_FROM_CLERK.values():
        assert not names_in(anonymous, field)
    # every entity and operation is described; read-only rules are per role
    assert set(anonymous["paths"]["/records/customer/{id}"]) == {
        "get", "patch", "delete", "parameters"
    }  # fmt: skip
    assert "credit_limit" in tables_of(anonymous, "CustomerInput")["properties"]
    assert anonymous["info"]["x-view"] == "anonymous"


def test_the_document_is_public_but_checks_a_token_sent(client: FlaskClient) -> None:
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/v1/records/customer").status_code == 401  # the API is not
    for header in ("Bearer hdl_nope", "Basic abc", "Bearer "):
        response = client.get("/api/v1/openapi.json", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert set(response.json) == {"error"}
        assert response.json["error"]["code"] == "unauthorized"


def test_a_browser_session_gets_its_own_view(client: FlaskClient) -> None:
    login = client.post(
        "/api/v1/auth/session", json={"username": "clara", "password": "password123"}
    )
    assert login.status_code == 200, login.json
    doc = client.get("/api/v1/openapi.json").json
    assert doc["info"]["x-view"] == "clerk"
    assert "internal_rating" not in tables_of(doc, "Customer")["properties"]


# --- caching -------------------------------------------------------------------------------


def test_documents_are_cached_per_view(shop_app: Flask, client: FlaskClient) -> None:
    first = client.get("/api/v1/openapi.json")
    again = client.get("/api/v1/openapi.json")
    assert first.data == again.data and first.headers["ETag"] == again.headers["ETag"]
    assert "no-cache" in first.headers["Cache-Control"]
    assert {"Authorization", "Cookie"} <= set(first.headers["Vary"].replace(" ", "").split(","))
    unchanged = client.get("/api/v1/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert unchanged.status_code == 304
    cache = shop_app.extensions["heddle.openapi"]
    assert cache.size == 1
    clerk = client.get("/api/v1/openapi.json", headers=bearer(shop_app, "clara"))
    assert clerk.headers["ETag"] != first.headers["ETag"]
    assert "private" in clerk.headers["Cache-Control"]
    client.get("/api/v1/openapi.json", headers=bearer(shop_app, "clara"))
    client.get("/api/v1/openapi.json", headers=bearer(shop_app, "root"))
    assert cache.size == 3  # anonymous, clerk, admin


def test_the_same_permissions_share_one_document(shop_app: Flask) -> None:
    runtime = shop_app.extensions["heddle"]
    cache = openapi.DocumentCache()
    model, permissions = runtime.records.model, runtime.records.permissions
    admin = cache.get(model, permissions, frozenset({"admin"}))
    assert cache.get(model, permissions, frozenset({"admin", "clerk"})) is admin
    assert cache.get(model, permissions, frozenset({"auditor", "no_such_role"})) is cache.get(
        model, permissions, frozenset({"auditor"})
    )
    assert cache.size == 2


def test_a_definition_change_regenerates_the_document(
    shop_app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    before = client.get("/api/v1/openapi.json")
    assert "loyalty" not in tables_of(before.json, "Customer")["properties"]
    changed = tmp_path / "shop-v2.yaml"
    changed.write_text(
        SHOP.replace("  employees: {type: integer, min: 0}\n",
                     "  employees: {type: integer, min: 0}\n  loyalty: {type: integer}\n"),
        encoding="utf-8",
    )  # fmt: skip
    # another process migrates the change; this one follows it (see test_reload.py)
    from engine import migrate

    runtime = shop_app.extensions["heddle"]
    migrate(runtime.engine, runtime.model, actor="test")
    migrate(runtime.engine, load_packages([changed]), actor="test")
    runtime.refresh()
    after = client.get("/api/v1/openapi.json", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert "loyalty" in tables_of(after.json, "Customer")["properties"]
    assert "loyalty__gte" in list_parameters(after.json, "customer")
    assert after.json["info"]["x-model-hash"] == runtime.model.hash
    assert after.json["info"]["x-model-hash"] != before.json["info"]["x-model-hash"]
    assert shop_app.extensions["heddle.openapi"].size == 1  # the old documents are gone


# --- names ---------------------------------------------------------------------------------


def test_colliding_entity_names_keep_their_own(tmp_path: Path) -> None:
    package = tmp_path / "odd.yaml"
    package.write_text(
        textwrap.dedent(
            """\
            kind: package
            name: odd
            ---
            kind: entity
            name: error
            fields: {text: {type: string}}
            ---
            kind: entity
            name: item_2
            fields: {text: {type: string}}
            ---
            kind: entity
            name: item2
            fields: {text: {type: string}}
            ---
            kind: entity
            name: quote
            fields: {text: {type: string}}
            """
        ),
        encoding="utf-8",
    )
    model = load_packages([package])
    names = openapi.schema_names(model)
    assert names == {"error": "error", "item_2": "item_2", "item2": "item2", "quote": "Quote"}
    app = create_app(
        {"PACKAGES": str(package), "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "t",
         "DATABASE_URL": f"sqlite:///{tmp_path / 'odd.db'}"}
    )  # fmt: skip
    doc = app.test_client().get("/api/v1/openapi.json").json
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert {"Error", "error", "errorInput", "item_2", "item2Page", "Quote"} <= set(
        doc["components"]["schemas"]
    )


# --- the documentation page ----------------------------------------------------------------


def test_the_docs_page_uses_the_installed_swagger_ui(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'data-url="/api/v1/openapi.json"' in html
    assert "<title>Shop API</title>" in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    assets = re.findall(r'(?:href|src)="(/api/v1/docs/assets/[^"]+)"', html)
    assert len(assets) == 5
    types = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype == types[Path(url).suffix], url
        assert response.cache_control.max_age == 365 * 24 * 3600
        assert response.cache_control.public and response.cache_control.immutable
        response.close()
    with client.get(next(u for u in assets if u.endswith("swagger-ui-bundle.js"))) as bundle:
        assert b"SwaggerUIBundle" in bundle.get_data()
    assert b"SwaggerUIBundle" in client.get(assets[-1]).get_data()  # the initializer


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/docs/assets/0.0.0/swagger-ui.css",  # another version
        f"/api/v1/docs/assets/{openapi.ASSET_VERSION}/index.html",  # the demo page
        f"/api/v1/docs/assets/{openapi.ASSET_VERSION}/../__init__.py",
        f"/api/v1/docs/assets/{openapi.ASSET_VERSION}/nothing.js",
    ],
)
def test_only_the_assets_are_served(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
