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

A busy portal also waits a moment for its batch to fill (``wait_seconds``,
``PAYMENT_BATCH_WAIT_MS``), as PostgreSQL's ``commit_delay`` does when
``commit_siblings`` transactions are active: the writer of a batch waits, at
most that long, until as many items are waiting as payment requests were in
the process at once since the previous batch began (``request_started`` /
``request_ended``). Clients answered by the previous batch are then sending
their next payment, and one batch carries them all instead of two or three:
each batch's statements, round trips and commit cost the same for one item or
eight, so the CPU per payment falls and the payments per second rise. A portal
that saw one request at a time never waits.

A batch that fails as a whole (the connection lost, a serialisation error) is
written again one item at a time, so that each item gets the outcome it would
have had alone and one item's failure is never another's.
"""
from __future__ import annotations

import threading
import time
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

    def __init__(self, write_batch: Callable[[Session, list], list], max_batch: int = MAX_BATCH,
                 wait_seconds: float = 0.0):
        if max_batch < 1:
            raise ValueError(f"a batch holds at least one item (PAYMENT_BATCH_MAX), not {max_batch}")
        if wait_seconds < 0:
            raise ValueError(f"a batch's wait is 0 or more (PAYMENT_BATCH_WAIT_MS), not {wait_seconds * 1000:g} ms")
        self.write_batch = write_batch  # (session, items) -> one outcome per item: a result or an exception
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds  # the longest a writer waits for its batch to fill (see the module)
        self._cond = threading.Condition()
        self._arrived = threading.Condition(self._cond)  # the same lock: a writer waiting for items waits on this
        self._queue: list[_Waiting] = []
        self._writing = False
        self._requests = 0  # requests between request_started and request_ended now
        self._peak = 0  # the most of them at once since the last batch began: the next batch's target
        self.sizes: dict[int, int] = {}  # batch size: how many batches of that size were written (for tests, stats)

    def request_started(self) -> None:
        """Count a request that is going to submit an item (until ``request_ended``): what a writer waits for."""
        with self._cond:
            self._requests += 1
            self._peak = max(self._peak, self._requests)

    def request_ended(self) -> None:
        """Stop counting a request counted by ``request_started``, whether it submitted its item or not."""
        with self._cond:
            self._requests -= 1

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
            self._arrived.notify()  # a writer waiting for its batch to fill counts this one
        while not waiting.done:
            with self._cond:
                while self._writing and not waiting.done:
                    self._cond.wait()
                if waiting.done:
                    break
                # This thread writes the next batch: the items waiting now, oldest first (its own among
                # them unless more than max_batch wait before it: then it writes again after this one).
                self._writing = True
                try:
                    self._fill()
                except BaseException:  # stopped while waiting: the next thread in line writes instead
                    self._writing = False
                    self._cond.notify_all()
                    raise
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            try:
                self._write(session, batch)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
        return waiting.outcome

    def _fill(self) -> None:
        """Wait, at most ``wait_seconds``, until as many items wait as requests were counted at once (lock held)."""
        target, self._peak = min(self._peak, self.max_batch), self._requests
        if self.wait_seconds and len(self._queue) < target:
            deadline = time.monotonic() + self.wait_seconds
            while len(self._queue) < target and (left := deadline - time.monotonic()) > 0:
                self._arrived.wait(left)

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
