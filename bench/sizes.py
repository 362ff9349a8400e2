"""The largest modules and classes of Heddle's packages, in lines (docs/architecture.md).

.venv/bin/python bench/sizes.py
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("metamodel", "engine", "workflows", "ui_renderer", "platform/heddle")


def main(top: int = 5) -> None:
    modules: list[tuple[int, str]] = []
    classes: list[tuple[int, str]] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            name = str(path.relative_to(ROOT))
            modules.append((text.count("\n"), name))
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                    classes.append((node.end_lineno - node.lineno + 1, f"{name} {node.name}"))
    for title, rows in (("modules", modules), ("classes", classes)):
        print(f"largest {title}:")
        for lines, name in sorted(rows, reverse=True)[:top]:
            print(f"  {lines:5d}  {name}")


if __name__ == "__main__":
    main()
