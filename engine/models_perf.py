"""Indexes for the hot queries of the timer sweep and of every transition (revision 0701).

- ``ix_timers_pending_due``: the claim (``status = 'pending' AND due_at <= now
  ORDER BY due_at, id LIMIT n``) is a range scan of pending timers in order,
  however many fired timers the table keeps and however many fall due at once;
  partial, so it holds only what still waits.
- ``ix_timers_claimed_lease``: returning expired leases touches only claimed rows.
- ``ix_tasks_instance_status``: closing the open tasks of a case on a transition.
"""
from __future__ import annotations

from sqlalchemy import Index, text

from .models import Task, Timer

TM = Timer.__table__
TK = Task.__table__

Index("ix_timers_pending_due", TM.c.due_at, TM.c.id,
      sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'"))
Index("ix_timers_claimed_lease", TM.c.lease_until,
      sqlite_where=text("status = 'claimed'"), postgresql_where=text("status = 'claimed'"))
Index("ix_tasks_instance_status", TK.c.instance_id, TK.c.status)
