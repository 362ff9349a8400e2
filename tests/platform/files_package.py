"""The screens' test package (:mod:`screens_package`) with a file field on accounts, for
the attachment tests of the API, the screens and the browser."""

from __future__ import annotations

from screens_package import PACKAGE

FILES = PACKAGE.replace(
    "  notes: {type: text, label: {en: Notes, zh: 备注, ja: 備考}}\n",
    "  notes: {type: text, label: {en: Notes, zh: 备注, ja: 備考}}\n"
    "  scan: {type: file, label: {en: Contract scan, zh: 合同扫描件, ja: 契約書スキャン},"
    " accept: [application/pdf], max_size: 3000}\n"
    "  photos: {type: file, multiple: true, label: {en: Photos, zh: 照片, ja: 写真},"
    " accept: [image/*]}\n",
).replace("fields: [notes]}", "fields: [notes, scan, photos]}")
assert FILES.count("type: file") == 2, "screens_package.PACKAGE changed: update FILES"

PDF = b"%PDF-1.4\n% a signed contract\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
