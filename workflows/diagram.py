"""A workflow as a Mermaid state diagram (``heddle workflow diagram NAME``; the screens
draw the same text).

>>> print(mermaid(model.workflow("case_lifecycle")))  # doctest: +SKIP
stateDiagram-v2
    state "Open" as open
    ...
    [*] --> open
    open --> in_progress: start
"""

from __future__ import annotations

from metamodel import Workflow


def _text(value: str) -> str:
    return value.replace('"', "'").replace("\n", " ")


def mermaid(workflow: Workflow, locale: str = "en") -> str:
    """``stateDiagram-v2`` text: states with their labels (locked ones marked), the
    initial and final ones joined to ``[*]``, one arrow per transition and source
    (``'*'`` drawn from every other state), approvals' outcomes dotted in a note."""
    lines = ["stateDiagram-v2"]
    for state in workflow.states:
        label = _text(state.label.get(locale))
        lines.append(f'    state "{label}{" (locked)" if state.locked else ""}" as {state.name}')
    lines.append(f"    [*] --> {workflow.initial.name}")
    names = [s.name for s in workflow.states]
    for transition in workflow.transitions:
        label = _text(transition.label.get(locale))
        if transition.approval:
            label += f" ({transition.approval})"
        for source in names:
            if transition.allowed_from(source):
                lines.append(f"    {source} --> {transition.to}: {label}")
    for approval in workflow.approvals:
        outcomes = (("approved", approval.on_approve), ("rejected", approval.on_reject))
        for outcome, settled in outcomes:
            if settled:
                sources = [t.to for t in workflow.transitions if t.approval == approval.name]
                for source in dict.fromkeys(sources):
                    if source == settled:
                        continue
                    lines.append(f"    {source} --> {settled}: {approval.name} {outcome}")
    for state in workflow.states:
        if state.final:
            lines.append(f"    {state.name} --> [*]")
    return "\n".join(lines) + "\n"
