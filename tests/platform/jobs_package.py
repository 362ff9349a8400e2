"""The package the job, automation and notification tests share."""

PACKAGE = """\
kind: package
name: jobs
locales: [en, zh, ja]
---
kind: entity
name: contract
ownable: true
title_field: title
fields:
  title: {type: string, required: true}
  status: {type: choice, options: [draft, active, ended], default: draft}
  end_date: {type: date, index: true}
  hits: {type: integer, default: 0}
  tier: {type: string}
---
kind: entity
name: person
ownable: true
title_field: name
fields:
  name: {type: string, required: true}
  birthday: {type: date, index: true}
---
kind: role
name: rep
permissions:
  contract: {read: own, create: own, update: own, delete: own}
  person: {read: own, create: own, update: own}
---
kind: role
name: manager
permissions:
  "*": {read: all, update: all}
---
kind: automation
name: expiry
entity: contract
trigger: {date_field: end_date, offset_days: -30}
condition: "status == 'active'"
actions:
  - type: notify
    to: owner
    message: {en: Contract expires in 30 days, zh: 合同将在30天后到期, ja: 契約は30日後に期限切れです}
---
kind: automation
name: birthday
entity: person
trigger: {date_field: birthday, yearly: true}
actions: [{type: notify, to: owner, email: false}]
---
kind: automation
name: gold_on_activate
entity: contract
trigger: {event: updated, fields: [status]}
condition: "status == 'active'"
actions:
  - {type: set, values: {tier: gold}}
  - {type: notify, to: manager, message: {en: A contract became active, zh: 合同已生效, ja: 契約が有効になりました}}
---
kind: automation
name: count_new
entity: contract
trigger: {event: created}
condition: "title != 'quiet'"
async: true
actions: [{type: enqueue, job: bump}]
---
kind: automation
name: farewell
entity: contract
trigger: {event: deleted}
actions: [{type: notify, to: owner, email: false}]
---
kind: automation
name: nudge
entity: contract
trigger: {schedule: "0 7 * * *"}
condition: "status == 'active' and end_date < today()"
batch_size: 2
actions: [{type: set, values: {hits: =hits + 10}}]
"""

PEOPLE = [
    ("root", ["admin"], "HQ", None),
    ("mia", ["manager"], "East", None),
    ("ann", ["rep"], "East", "mia"),
]
