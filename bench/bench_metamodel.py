"""Benchmark: load, validate and compile definition packages.

Measures ``metamodel.load_packages`` on (1) a generated package of 30 entities and 400
fields using every field type, references, formulas, rollups, validations, forms and
trilingual labels, and (2) the CRM package. The baseline, measured in the same run on the
same files, is reading the YAML alone with libyaml (``yaml.load_all`` with CSafeLoader):
the floor any loader pays. Goal (DESIGN.md): under 300 ms per compile.

    .venv/bin/python bench/bench_metamodel.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metamodel import load_packages  # noqa: E402

ENTITIES = 30
FIELDS = 400

_SIMPLE = ["string", "text", "integer", "decimal", "money", "percent", "boolean", "date",
           "datetime", "email", "phone", "url", "file", "user"]  # fmt: skip


def _label(text: str) -> str:
    return f"{{en: {text}, zh: {text}中文, ja: {text}日本語}}"


def generate(folder: Path) -> Path:
    """Write the 30-entity, 400-field package into ``folder``."""
    (folder / "entities").mkdir(parents=True)
    (folder / "package.yaml").write_text(
        "kind: package\nname: bench\nlocales: [en, zh, ja]\n", encoding="utf-8"
    )
    per_entity = [FIELDS // ENTITIES + (1 if i < FIELDS % ENTITIES else 0) for i in range(ENTITIES)]
    for index, count in enumerate(per_entity):
        name = f"thing_{index:02d}"
        lines = [
            "kind: entity",
            f"name: {name}",
            f"label: {_label(name)}",
            "ownable: true",
            "search_fields: [name]",
            "fields:",
            f"  name: {{type: string, required: true, label: {_label('Name')}}}",
            "  amount: {type: money, min: 0}",
            "  stage:",
            "    type: choice",
            f"    label: {_label('Stage')}",
            "    default: open",
            "    options:",
            *(f"      - {{value: {v}, label: {_label(v)}}}" for v in ("open", "won", "lost")),
            "  weighted: {type: formula, returns: money, "
            "expression: \"amount * 2 if stage in ['open', 'won'] else 0\"}",
            "  code: {type: autonumber, format: 'T-{YYYY}-{seq:05}'}",
        ]
        used = 5
        if index > 0:
            lines.append(f"  parent: {{type: reference, to: thing_{index - 1:02d}}}")
            used += 1
        if index < ENTITIES - 1:
            lines.append(
                f"  total: {{type: rollup, of: thing_{index + 1:02d}, via: parent, "
                "aggregate: sum, field: amount, filter: \"stage == 'won'\"}"
            )
            used += 1
        for extra in range(count - used):
            kind = _SIMPLE[extra % len(_SIMPLE)]
            lines.append(
                f"  f{extra:02d}: {{type: {kind}, label: {_label(f'F{extra}')}, "
                f"visible_when: \"stage != 'lost'\"}}"
            )
        lines += [
            "validations:",
            "  - name: positive",
            "    rule: amount >= 0",
            f"    message: {_label('Positive')}",
            "form:",
            "  sections:",
            "    - name: main",
            "      fields: [name, amount, stage]",
        ]
        (folder / "entities" / f"{name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def parse_only(folder: Path) -> None:
    for file in sorted(folder.rglob("*.yaml")):
        list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader))


def measure(func: Callable[[], object], repeat: int) -> list[float]:
    func()  # warm caches: imports, compiled schema validators
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp) / "bench")
        model = load_packages([generated])
        fields = sum(len(e.fields) for e in model)
        crm = ROOT / "apps" / "crm_definitions"
        crm_model = load_packages([crm])
        crm_fields = sum(len(e.fields) for e in crm_model)
        rows = []
        for title, folder, entities, count in (
            ("generated package", generated, len(model.entities), fields),
            ("CRM package", crm, len(crm_model.entities), crm_fields),
        ):
            heddle = measure(lambda f=folder: load_packages([f]), args.repeat)
            floor = measure(lambda f=folder: parse_only(f), args.repeat)
            rows.append((title, entities, count, heddle, floor))
    print(f"load + validate + compile, {args.repeat} runs each, Python {sys.version.split()[0]}")
    print()
    print(
        "| package | entities | fields | median ms | p95 ms | YAML parse only, median ms | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for title, entities, count, heddle, floor in rows:
        med, base = statistics.median(heddle), statistics.median(floor)
        print(
            f"| {title} | {entities} | {count} | {med:.1f} | {p95(heddle):.1f} | "
            f"{base:.1f} | {med / base:.1f}× |"
        )


if __name__ == "__main__":
    main()
