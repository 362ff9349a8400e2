"""The paper trail of a won deal: the quote (written when the deal reached proposal), the
contract, the sales order, the instalments with payments on time, late or short, and the
invoices finance issues."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ._base import Deal, Scene, Teller, pick
from ._rows import Change
from ._world import CENT, DAY

METHODS = {
    "zh": (
        ("bank_transfer", 70),
        ("bank_acceptance", 10),
        ("alipay", 8),
        ("wechat_pay", 7),
        ("cheque", 5),
    ),
    "ja": (("bank_transfer", 90), ("credit_card", 10)),
    "en": (("bank_transfer", 75), ("credit_card", 20), ("cheque", 5)),
}
INVOICE = {"zh": ("vat_special", 13), "ja": ("qualified_invoice", 10), "en": ("commercial", 0)}


class Orders(Teller):
    """Quotes, contracts, orders, receivables, payments and invoices of one account."""

    def quote(self, scene: Scene, deal: Deal) -> None:
        rng, account, owner, contacts = scene.rng, scene.account, scene.owner, scene.contacts
        assert deal.reached_proposal is not None
        at = deal.reached_proposal
        status = {"won": "accepted", "lost": rng.choice(("rejected", "expired"))}.get(
            deal.stage, "approved" if deal.discount > 15 else rng.choice(("sent", "sent", "draft"))
        )
        quote_id = self.sink.new_id("quote")
        deal.values["quote"] = quote_id
        self.sink.add(
            "quote",
            {
                "id": quote_id,
                "title": None,
                "account": account["id"],
                "opportunity": deal.id,
                "contact": contacts[0],
                "date": at.date(),
                "valid_until": at.date() + 30 * DAY,
                "status": status,
                "discount": deal.discount,
                "owner_id": owner.id,
                "terms": None,
                "notes": None,
            },
            at=at,
            actor=owner.id,
        )
        for line in deal.lines:
            self.sink.add(
                "quote_line",
                {
                    "quote": quote_id,
                    "product": line.product.id,
                    "description": None,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "discount": line.discount,
                },
                at=at,
                actor=owner.id,
            )

    def contract(self, scene: Scene, deal: Deal) -> None:
        rng, culture, account, owner = scene.rng, scene.culture, scene.account, scene.owner
        contacts = scene.contacts
        w = self.world
        assert deal.closed is not None
        signed = min(w.later(deal.closed, rng, 0, 5), w.now - DAY / 24)
        years = rng.choice((1, 1, 2))
        start = signed.date()
        end = start + dt.timedelta(days=365 * years - 1)
        recent = (w.now - signed).days < 7
        status = rng.choice(("pending_approval", "approved")) if recent else "active"
        periods = 1 if deal.amount < 50_000 else 2 if deal.amount < 200_000 else rng.choice((3, 4))
        contract_id = self.sink.new_id("contract")
        terms = {
            "zh": f"分{periods}期付款，每期开票后30天内付清",
            "ja": f"{periods}回分割、請求書発行後30日以内に支払い",
            "en": f"{periods} instalments, each due 30 days after invoice",
        }[culture]
        changes = []
        if end < w.today:
            expiry = dt.datetime(end.year, end.month, end.day, 16, tzinfo=dt.UTC) + DAY
            changes.append(Change(expiry, None, {"status": "expired"}))
        self.sink.add(
            "contract",
            {
                "id": contract_id,
                "title": f"{account['name'][:150]} {start.year}",
                "account": account["id"],
                "opportunity": deal.id,
                "quote": deal.values.get("quote"),
                "type": "agency" if rng.random() < 0.1 else "service" if years == 2 else "direct",
                "amount": deal.amount,
                "discount": deal.discount,
                "status": status,
                "sign_date": start,
                "start_date": start,
                "end_date": end,
                "customer_signer": contacts[0],
                "our_signer": owner.id,
                "payment_terms": terms,
                "owner_id": owner.id,
                "notes": None,
            },
            at=signed,
            actor=owner.id,
            changes=changes,
        )
        if status != "pending_approval":
            self.order(scene, contract_id, deal, signed)
        self.receivables(scene, (contract_id, periods), deal.amount, signed, status)

    def order(self, scene: Scene, contract_id: int, deal: Deal, signed: dt.datetime) -> None:
        rng, account, owner = scene.rng, scene.account, scene.owner
        w = self.world
        at = min(w.later(signed, rng, 0, 3), w.now - DAY / 48)
        delivery = at.date() + dt.timedelta(days=rng.randrange(7, 30))
        age = (w.today - delivery).days
        status = (
            "completed"
            if age > 10
            else "delivered"
            if age >= 0
            else rng.choice(("confirmed", "shipped"))
        )
        order_id = self.sink.new_id("sales_order")
        self.sink.add(
            "sales_order",
            {
                "id": order_id,
                "account": account["id"],
                "contract": contract_id,
                "date": at.date(),
                "delivery_date": delivery,
                "status": status,
                "owner_id": owner.id,
                "shipping_address": account.get("address"),
                "receiver": None,
                "receiver_phone": None,
                "notes": None,
            },
            at=at,
            actor=owner.id,
        )
        for line in deal.lines:
            combined = 100 - (100 - line.discount) * (100 - deal.discount) / 100
            self.sink.add(
                "order_line",
                {
                    "sales_order": order_id,
                    "product": line.product.id,
                    "description": None,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "discount": combined.quantize(CENT, ROUND_HALF_UP),
                },
                at=at,
                actor=owner.id,
            )

    def receivables(
        self,
        scene: Scene,
        contract: tuple[int, int],
        amount: Decimal,
        signed: dt.datetime,
        status: str,
    ) -> None:
        """The instalments of a contract (its id and how many), and what the customer paid
        of them: on time, late or short, as is its habit."""
        rng, culture, account, owner = scene.rng, scene.culture, scene.account, scene.owner
        contract_id, periods = contract
        w = self.world
        habit = pick(rng, (("punctual", 55), ("late", 30), ("slow", 15)))
        share = (amount / periods).quantize(CENT, ROUND_HALF_UP)
        method = pick(rng, METHODS[culture])
        for period in range(1, periods + 1):
            part = share if period < periods else amount - share * (periods - 1)
            due = signed.date() + dt.timedelta(days=10 + (period - 1) * rng.choice((60, 90)))
            plan_id = self.sink.new_id("receivable_plan")
            self.sink.add(
                "receivable_plan",
                {
                    "id": plan_id,
                    "contract": contract_id,
                    "account": account["id"],
                    "period": period,
                    "due_date": due,
                    "amount": part,
                    "method": method,
                    "owner_id": owner.id,
                    "notes": None,
                },
                at=signed,
                actor=owner.id,
            )
            if status == "pending_approval":
                continue
            if habit == "punctual":
                pays = [(due - dt.timedelta(days=rng.randrange(0, 6)), part)]
            elif habit == "late":
                pays = [(due + dt.timedelta(days=rng.randrange(5, 80)), part)]
            else:
                half = (part * Decimal(rng.uniform(0.4, 0.7))).quantize(CENT, ROUND_HALF_UP)
                pays = [(due + dt.timedelta(days=rng.randrange(10, 45)), half)]
                if rng.random() < 0.3:
                    pays.append((due + dt.timedelta(days=rng.randrange(90, 200)), part - half))
            for day, paid in pays:
                day = max(day, signed.date())
                if day > w.today:
                    continue
                self.payment(scene, (contract_id, plan_id), day, paid, method)

    def payment(
        self, scene: Scene, plan: tuple[int, int], day: dt.date, amount: Decimal, method: str
    ) -> None:
        """A payment of ``plan`` (contract id, plan id), confirmed by finance unless it is
        recent, and most often the invoice for it."""
        rng, account, owner = scene.rng, scene.account, scene.owner
        contract_id, plan_id = plan
        invoice_type, tax_rate = INVOICE[scene.culture]
        w = self.world
        at = w.at(day, rng)
        confirmed = (w.today - day).days >= 3
        values: dict[str, Any] = {
            "contract": contract_id,
            "receivable_plan": plan_id,
            "account": account["id"],
            "date": day,
            "amount": amount,
            "method": method,
            "payer": account["name"][:200],
            "reference_no": f"{day:%Y%m%d}{rng.randrange(10**5, 10**6)}",
            "status": "pending",
            "owner_id": owner.id,
            "notes": None,
        }
        changes = []
        if confirmed:
            done = min(at + DAY, w.now - DAY / 24)
            changes.append(
                Change(
                    done,
                    self.finance.id,
                    {"status": "confirmed", "confirmed_at": done, "confirmed_by": self.finance.id},
                )
            )
            key = (owner.id, day.year, day.month)
            w.paid[key] = w.paid.get(key, Decimal(0)) + amount
        self.sink.add("payment", values, at=at, actor=self.finance.id, changes=changes)
        if rng.random() < 0.85:
            issued = max(day - dt.timedelta(days=rng.randrange(0, 10)), w.start.date())
            self.sink.add(
                "invoice",
                {
                    "contract": contract_id,
                    "account": account["id"],
                    "type": invoice_type,
                    "invoice_no": f"{rng.randrange(10**7, 10**8)}",
                    "date": issued,
                    "amount": amount,
                    "tax_rate": Decimal(tax_rate),
                    "status": rng.choice(("issued", "sent", "sent")),
                    "buyer_name": account["name"][:200],
                    "owner_id": owner.id,
                    "notes": None,
                },
                at=w.at(issued, rng),
                actor=self.finance.id,
            )
