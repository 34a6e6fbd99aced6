"""The heartbeat: APScheduler runs one job that ticks the runtime (schedules, timers) and the extra hooks.

Durable truth lives in our tables: APScheduler keeps nothing but the
interval job in memory, so a restart loses nothing. With the simulated clock
the heartbeat fires what is due at the simulated "now"; time itself moves only
by `partnerflow clock advance` (or the API).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("partnerflow.scheduler")


class Heartbeat:
    def __init__(self, runtime, interval: float = 1.0, hooks: Sequence[Callable] = ()):
        self.runtime = runtime
        self.interval = interval
        self.hooks = list(hooks)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.scheduler.add_job(self.beat, "interval", seconds=interval, id="partnerflow-heartbeat",
                               max_instances=1, coalesce=True, misfire_grace_time=None)

    def beat(self) -> None:
        try:
            self.runtime.tick()
        except Exception:  # noqa: BLE001 - keep beating; the next beat retries
            log.exception("tick failed")
        for hook in self.hooks:
            try:
                hook(self.runtime)
            except Exception:  # noqa: BLE001
                log.exception("heartbeat hook %s failed", getattr(hook, "__name__", hook))

    def start(self) -> None:
        self.beat()  # timers missed while no worker ran fire now, once
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
