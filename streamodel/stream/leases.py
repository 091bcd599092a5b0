"""Leases: sharing one stream's shards between the worker processes of a group.

Each shard has one item in the state table (:class:`~streamodel.stream.checkpoints.StateStore`)
with its checkpoint, parent, ``owner`` and ``counter``. The counter is a version column, so
taking, renewing, stealing, releasing and checkpointing are all conditional writes on it: of
two processes racing for a lease, exactly one wins, and a process whose lease was taken
finds out at its next write (then it stops reading that shard, before checkpointing).

Expiry needs no clock sync: a lease is expired when its counter has not moved for
``failover`` seconds *as measured on this process's monotonic clock* since it first saw
that counter value. Owners renew (bump the counter) every ``failover / 4`` seconds.

Balance: each process aims at ``ceil(open shards / live owners)`` leases; it takes free or
expired leases first, then steals at most ``max_steal`` per round from the most loaded owner
if that owner holds more than its share (or exactly its share while this process is more than
one lease short), so counts end at most one apart. A stolen lease is read only after a grace
period (half the failover time), by which its previous owner has tried to renew, failed and
stopped; so no shard is read by two processes of a group at once. Children are taken only
after their parent's lease shows the shard end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streamodel.exceptions import ConditionFailedError, TransportError
from streamodel.stream.checkpoints import MARKER_PREFIX, SHARD_END, StateStore

__all__ = ["LeaseManager", "LeaseRound", "default_worker_id"]

logger = logging.getLogger("streamodel.worker")


def default_worker_id() -> str:
    """host:pid:random, unique per process and readable in ``streamodel status``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class LeaseRound:
    """What one round of lease maintenance changed for this process."""

    taken: dict[str, Any] = field(default_factory=dict)  # shard id -> state (now mine)
    lost: set[str] = field(default_factory=set)
    finished_elsewhere: set[str] = field(default_factory=set)  # shard ends seen in the table


class LeaseManager:
    """Takes, renews, steals and releases the leases of one stream for one process."""

    def __init__(
        self,
        store: StateStore,
        stream_arn: str,
        model_name: str,
        owner: str,
        *,
        failover: float = 10.0,
        max_steal: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.stream_arn = stream_arn
        self.model_name = model_name
        self.owner = owner
        self.failover = failover
        self.max_steal = max_steal
        self.clock = clock
        # The state objects of every shard's lease; for held leases, ours is authoritative.
        self.states: dict[str, Any] = {}
        self.held: set[str] = set()
        # shard id -> (counter, owner, when this process first saw that counter)
        self._seen: dict[str, tuple[int | None, str | None, float]] = {}
        # Leases whose counter this process has seen move: their owners are alive.
        self._moved: set[str] = set()
        # Stolen leases are read only from this monotonic time on.
        self.ready_at: dict[str, float] = {}
        self.last_round = -math.inf

    @property
    def renew_interval(self) -> float:
        return self.failover / 4

    def due(self) -> bool:
        return self.clock() - self.last_round >= self.renew_interval

    # -- one round ------------------------------------------------------------------------
    def run_round(self, shards: Iterable[tuple[str, str | None]]) -> LeaseRound:
        """Renew, then create, expire, take and steal leases; ``shards`` are (id, parent)."""
        now = self.clock()
        self.last_round = now
        result = LeaseRound()
        self._renew(result)
        # Items whose id starts with "~" are markers (a group's start time, a snapshot's
        # pinned position), not leases.
        stored = {
            sid: state
            for sid, state in self.store.load(self.stream_arn).items()
            if not sid.startswith(MARKER_PREFIX)
        }
        for shard_id, parent in shards:
            if shard_id not in stored:
                created = self._create(shard_id, parent)
                if created is not None:
                    stored[shard_id] = created
        for shard_id, state in stored.items():
            if shard_id in self.held:
                if state.owner != self.owner:  # taken by someone since our renewal
                    self._lose(shard_id, result)
                continue
            if state.owner == self.owner:
                # A take whose answer was lost did land: the lease is ours.
                self.states[shard_id] = state
                self.held.add(shard_id)
                result.taken[shard_id] = state
                continue
            self.states[shard_id] = state
            self._observe(shard_id, state, now)
            if state.checkpoint == SHARD_END:
                result.finished_elsewhere.add(shard_id)
        self._balance(now, result)
        return result

    def _renew(self, result: LeaseRound) -> None:
        for shard_id in sorted(self.held):
            state = self.states[shard_id]
            try:
                self.store.save(state)  # updated_at changes, so the counter moves
            except ConditionFailedError:
                self._lose(shard_id, result)
            except TransportError:
                if not self.refresh(shard_id):
                    self._lose(shard_id, result)

    def refresh(self, shard_id: str) -> bool:
        """After a write with an unknown outcome: re-read the lease and keep it if it is
        still ours (with the stored counter, so the next write's condition holds)."""
        try:
            stored = self.store.load(self.stream_arn).get(shard_id)
        except TransportError:
            return shard_id in self.held  # cannot tell yet: the next round tries again
        if stored is None or stored.owner != self.owner:
            self.held.discard(shard_id)
            return False
        self.states[shard_id] = stored
        return True

    def _create(self, shard_id: str, parent: str | None) -> Any:
        state = self.store.new_state(self.stream_arn, shard_id, self.model_name)
        state.parent = parent
        try:
            self.store.save(state)
        except ConditionFailedError:
            return None  # another process created it first; the next round loads it
        return state

    def _observe(self, shard_id: str, state: Any, now: float) -> None:
        seen = self._seen.get(shard_id)
        if seen is None or seen[0] != state.counter or seen[1] != state.owner:
            if seen is not None:
                self._moved.add(shard_id)
            self._seen[shard_id] = (state.counter, state.owner, now)

    def _expired(self, shard_id: str, now: float) -> bool:
        _, owner, since = self._seen[shard_id]
        return owner is None or now - since >= self.failover

    def _lose(self, shard_id: str, result: LeaseRound) -> None:
        self.held.discard(shard_id)
        self.ready_at.pop(shard_id, None)
        result.lost.add(shard_id)
        logger.warning(
            "lease on %s lost to another worker",
            shard_id,
            extra={"owner": self.owner, "shard_id": shard_id},
        )

    # -- balance ----------------------------------------------------------------------------
    def _available(self, shard_id: str) -> bool:
        """Open, and its parent (if any is still listed) read to its end."""
        state = self.states[shard_id]
        if state.checkpoint == SHARD_END:
            return False
        parent = self.states.get(state.parent) if state.parent else None
        return parent is None or parent.checkpoint == SHARD_END

    def _balance(self, now: float, result: LeaseRound) -> None:
        candidates = [sid for sid in self.states if self._available(sid)]
        live: dict[str, list[str]] = {}
        for sid in candidates:
            if sid in self.held:
                continue
            owner = self._seen[sid][1]
            if owner is not None and not self._expired(sid, now):
                live.setdefault(owner, []).append(sid)
        owners = len(live) + 1
        target = math.ceil(len(candidates) / owners) if candidates else 0
        mine = [sid for sid in candidates if sid in self.held]
        free = [
            sid
            for sid in candidates
            if sid not in self.held and (self._seen[sid][1] is None or self._expired(sid, now))
        ]
        for sid in sorted(free):
            if len(mine) >= target:
                break
            if self._take(sid, now, result, stolen=False):
                mine.append(sid)
        stolen = 0
        while len(mine) < target and stolen < self.max_steal and live:
            victim = max(live, key=lambda o: len(live[o]))
            # As KCL does: steal from an owner above its share, or at its share when this
            # process is more than one lease short (7 shards over 3: 3,3,1 becomes 3,2,2).
            need = target - len(mine)
            if len(live[victim]) < target or (len(live[victim]) == target and need <= 1):
                break
            sid = sorted(live[victim])[-1]
            live[victim].remove(sid)
            stolen += 1
            if self._take(sid, now, result, stolen=True):
                mine.append(sid)

    def _take(self, shard_id: str, now: float, result: LeaseRound, *, stolen: bool) -> bool:
        state = self.states[shard_id]
        previous = state.owner
        state.owner = self.owner
        try:
            self.store.save(state)
        except ConditionFailedError:
            return False  # someone else moved it first
        except TransportError:
            state.owner = previous
            return False  # outcome unknown: a later round adopts it if the take landed
        self.held.add(shard_id)
        result.taken[shard_id] = state
        if stolen:
            self.ready_at[shard_id] = now + self.failover / 2
        logger.info(
            "lease on %s taken%s",
            shard_id,
            f" from {previous}" if previous else "",
            extra={"owner": self.owner, "shard_id": shard_id, "stolen": stolen},
        )
        return True

    def takeable(self) -> list[str]:
        """Available leases nobody holds (free or expired) that this process has not taken."""
        now = self.clock()
        return [
            sid
            for sid in self.states
            if sid not in self.held
            and self._available(sid)
            and (self._seen[sid][1] is None or self._expired(sid, now))
        ]

    def awaiting_expiry(self) -> list[str]:
        """Available leases held by an owner never seen alive, not yet expired (maybe dead)."""
        now = self.clock()
        return [
            sid
            for sid in self.states
            if sid not in self.held
            and sid not in self._moved
            and self._available(sid)
            and self._seen[sid][1] is not None
            and not self._expired(sid, now)
        ]

    def ready(self, shard_id: str) -> bool:
        """Whether a held lease may be read now (stolen ones wait out their grace period)."""
        return shard_id in self.held and self.clock() >= self.ready_at.get(shard_id, -math.inf)

    # -- shutdown ---------------------------------------------------------------------------
    def release_all(self) -> None:
        """Give every held lease up (after the final checkpoint), so peers take them at once."""
        for shard_id in sorted(self.held):
            state = self.states[shard_id]
            state.owner = None
            # Already taken by someone else: nothing to give up.
            with contextlib.suppress(ConditionFailedError, TransportError):
                self.store.save(state)
        self.held.clear()
