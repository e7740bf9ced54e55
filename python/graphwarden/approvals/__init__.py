"""Just-in-time approvals: risky operations wait for approvers, with every decision on record.

Public surface:
- `ApprovalService` implements `graphwarden.guard.ApprovalGate` (`validate_spec`, `check`);
  build it with `ApprovalService.from_config(config)`.
- `install(gateway, service)` serves the approval API (`/_graphwarden/approvals...`).
- `ApprovalSpec` is a policy rule's `[approval]` table; `ApprovalStore` the SQLite store.
"""

from graphwarden.approvals._api import OP_APPROVE, OP_DENY, OP_LIST, OP_SHOW, ApprovalHandlers, install
from graphwarden.approvals._notify import Notifier, NotifySettings, slack_text
from graphwarden.approvals._service import ApprovalService, MaskHook, Observer, status_url
from graphwarden.approvals._spec import (
    JUSTIFICATION_HEADER,
    ApprovalSpec,
    AutoApprove,
    body_sha256,
    fingerprint,
    grant_key,
    parse_spec,
)
from graphwarden.approvals._states import TRANSITIONS, Event, IllegalTransition, State, next_state
from graphwarden.approvals._store import Approval, ApprovalError, ApprovalStore, Lookup, NewApproval

__all__ = [
    "JUSTIFICATION_HEADER",
    "OP_APPROVE",
    "OP_DENY",
    "OP_LIST",
    "OP_SHOW",
    "Approval",
    "ApprovalError",
    "ApprovalHandlers",
    "ApprovalService",
    "ApprovalSpec",
    "ApprovalStore",
    "AutoApprove",
    "Event",
    "IllegalTransition",
    "Lookup",
    "MaskHook",
    "NewApproval",
    "Notifier",
    "NotifySettings",
    "Observer",
    "State",
    "TRANSITIONS",
    "body_sha256",
    "fingerprint",
    "grant_key",
    "install",
    "next_state",
    "parse_spec",
    "slack_text",
    "status_url",
]
