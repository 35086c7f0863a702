"""Group commit: the writes a portal process receives at the same time share one transaction.

A request hands its item (a payment order) to the process's ``GroupCommit`` and
waits. When no batch is being written, the request that arrives writes every
item waiting at that moment, its own among them, with one call of the batch
writer (the API's ``write_payments``: the callers' logins read in one statement,
then ``payments.pay_many``: one transaction, one statement per step, one
commit); items arriving meanwhile wait for the next batch. An idle portal so
writes each item at once, alone, with no delay added; a busy one writes batches
as large as the number of requests waiting, which divides the statements, the
round trips and the commits per item by that number. This is the group commit
of PostgreSQL's own WAL writer and of InnoDB, one level up.

A batch that fails as a whole (the connection lost, a serialisation error) is
written again one item at a time, so that each item gets the outcome it would
have had alone and one item's failure is never another's.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

# One batch's items at most: a statement's parameters and a transaction's locks stay bounded.
MAX_BATCH = 64


class _Waiting:
    """One item and, once written, its outcome."""

    __slots__ = ("item", "outcome", "done")

    def __init__(self, item: Any):
        self.item = item
        self.outcome: Any = None
        self.done = False


class GroupCommit:
    """Write items handed in by concurrent threads in shared batches (see the module's docstring)."""

    def __init__(self, write_batch: Callable[[Session, list], list], max_batch: int = MAX_BATCH):
        if max_batch < 1:
            raise ValueError(f"a batch holds at least one item (PAYMENT_BATCH_MAX), not {max_batch}")
        self.write_batch = write_batch  # (session, items) -> one outcome per item: a result or an exception
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writing = False
        self.sizes: dict[int, int] = {}  # batch size: how many batches of that size were written (for tests, stats)

    def submit(self, session: Session, item: Any) -> Any:
        """Write `item` in the next batch and return its outcome (raise it, if it is an exception)."""
        if self.max_batch == 1:  # no batches: each item alone, in its own thread, as without a group commit
            outcome, = self._outcomes(session, [item])
        else:
            outcome = self._in_batch(session, item)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _in_batch(self, session: Session, item: Any) -> Any:
        """Wait for the batch that writes `item` (writing it, if no other thread is); return its outcome."""
        waiting = _Waiting(item)
        with self._cond:
            self._queue.append(waiting)
        while not waiting.done:
            with self._cond:
                while self._writing and not waiting.done:
                    self._cond.wait()
                if waiting.done:
                    break
                # This thread writes the next batch: the items waiting now, oldest first (its own among
                # them unless more than max_batch wait before it: then it writes again after this one).
                self._writing = True
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            try:
                self._write(session, batch)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
        return waiting.outcome

    def _write(self, session: Session, batch: list[_Waiting]) -> None:
        """Write one batch and record every item's outcome, whatever happens (no waiting thread may hang)."""
        # One exception each: the waiting threads raise them at the same time, each with its own traceback.
        outcomes: list = [RuntimeError("the batch was interrupted before it was written") for _ in batch]
        try:
            outcomes = self._outcomes(session, [w.item for w in batch])
        finally:
            with self._cond:
                for w, outcome in zip(batch, outcomes, strict=True):
                    w.outcome, w.done = outcome, True
                self.sizes[len(batch)] = self.sizes.get(len(batch), 0) + 1

    def _outcomes(self, session: Session, items: list) -> list:
        """Return the batch's outcomes; if it failed as a whole, write each item alone for its own outcome."""
        try:
            return self.write_batch(session, items)
        except Exception as failed:
            if len(items) == 1:
                return [failed]
        outcomes = []
        for item in items:
            try:
                outcomes.extend(self.write_batch(session, [item]))
            except Exception as alone:
                outcomes.append(alone)
        return outcomes
