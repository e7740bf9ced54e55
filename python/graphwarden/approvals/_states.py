"""The approval state machine, written as data.

Theory of operation: an approval starts `pending` when a request needs one (or `approved` at once
when an automatic-approval condition holds). Approvers vote; the N-th distinct approve vote moves
it to `approved`, any single deny vote to `denied`. A pending approval past its deadline becomes
`expired`. A one-time ("once") approval is consumed by exactly one request: `approved -> used`.
A time-boxed ("window") grant stays `approved` while each covered request records a `use` event
on it, and becomes `expired` when its window ends. Terminal states never change again.

Every transition, including the self-loops (`vote`, window `use`), is written to the
`approval_events` table with its actor, time and comment by the store, inside the same SQLite
transaction that changes the state.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    USED = "used"


class Event(enum.Enum):
    #: A request created the approval (from no state).
    REQUEST = "request"
    #: An approver voted yes, not yet enough distinct approvals.
    VOTE = "vote"
    APPROVE = "approve"
    #: An automatic-approval condition held when the request arrived.
    AUTO_APPROVE = "auto_approve"
    DENY = "deny"
    EXPIRE = "expire"
    #: A one-time approval consumed by its request.
    USE = "use"
    #: A request admitted under a time-boxed grant (the grant stays approved).
    USE_GRANT = "use_grant"


#: (from state, event) -> to state. `None` is "no approval yet". Anything absent is illegal.
TRANSITIONS: dict[tuple[State | None, Event], State] = {
    (None, Event.REQUEST): State.PENDING,
    (State.PENDING, Event.VOTE): State.PENDING,
    (State.PENDING, Event.APPROVE): State.APPROVED,
    (State.PENDING, Event.AUTO_APPROVE): State.APPROVED,
    (State.PENDING, Event.DENY): State.DENIED,
    (State.PENDING, Event.EXPIRE): State.EXPIRED,
    (State.APPROVED, Event.USE): State.USED,
    (State.APPROVED, Event.USE_GRANT): State.APPROVED,
    (State.APPROVED, Event.EXPIRE): State.EXPIRED,
}

TERMINAL: frozenset[State] = frozenset({State.DENIED, State.EXPIRED, State.USED})


class IllegalTransition(Exception):
    def __init__(self, state: State | None, event: Event) -> None:
        where = state.value if state is not None else "(new)"
        super().__init__(f"cannot {event.value} an approval that is {where}")
        self.state = state
        self.event = event


def next_state(state: State | None, event: Event) -> State:
    """The state after `event`, or IllegalTransition."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


__all__ = ["Event", "IllegalTransition", "State", "TERMINAL", "TRANSITIONS", "next_state"]
