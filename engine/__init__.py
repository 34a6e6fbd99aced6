"""partnerflow's engine: lifecycle definitions, the runtime, durable timers, clock, calendar and storage."""
from __future__ import annotations

from .actors import SYSTEM_ACTOR, Actor
from .calendar import BusinessCalendar, calendar_for
from .clock import Clock, ManualClock, SimulatedClock, SystemClock, parse_duration, require_aware
from .db import Database
from .definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from .errors import (
    Conflict,
    EventNotAllowed,
    Forbidden,
    LockHeld,
    NotFound,
    PartnerflowError,
    RuleViolation,
    StaleVersion,
    ValidationError,
)
from .runtime import Runtime

__all__ = [
    "Actor", "SYSTEM_ACTOR", "BusinessCalendar", "calendar_for", "Clock", "ManualClock", "SimulatedClock",
    "SystemClock", "parse_duration", "require_aware", "Database", "Ctx", "InboxTask", "Notify", "Timer",
    "Transition", "Workflow", "Conflict", "EventNotAllowed", "Forbidden", "LockHeld", "NotFound",
    "PartnerflowError", "RuleViolation", "StaleVersion", "ValidationError", "Runtime",
]
