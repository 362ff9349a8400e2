"""What the workflows refuse, as :mod:`engine.errors` classes: the platform renders them
like every other refusal (``{"error": {"code", "message", "fields"}}``)."""

from __future__ import annotations

from engine.errors import Conflict


class TransitionRefused(Conflict):
    """The record's state or values do not allow the transition now: it does not leave
    the current state, or its guard does not hold."""

    code = "transition_refused"


class RecordLocked(Conflict):
    """The record is in a locked state: only its transitions may change it."""

    code = "record_locked"


class ActionUnavailable(Conflict):
    """An action type the definitions name has no runtime in this version."""

    code = "action_unavailable"


class ApprovalDecided(Conflict):
    """The approval, or the caller's part of it, is decided already."""

    code = "approval_decided"


class NoApprover(Conflict):
    """A step of an approval has nobody who could approve it (an owner without a manager,
    a role nobody has, a user field left empty): the change that would start it is
    refused rather than leave the record waiting forever."""

    code = "no_approver"
