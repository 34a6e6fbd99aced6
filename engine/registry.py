"""The lifecycles this installation runs: every module of the `workflows` package that defines `WORKFLOW`.

A module may also define `SCHEDULES` (calendar schedules, see `engine.schedules`)
and `seed_demo(runtime, people)` (sample cases for `partnerflow serve --demo`).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache

from .definition import Workflow
from .errors import NotFound


@dataclass
class Registry:
    workflows: dict[str, Workflow] = field(default_factory=dict)
    schedules: list = field(default_factory=list)
    #: Demo seeders: functions (runtime, directory of demo people) -> None, one per lifecycle module.
    demo_seeders: list = field(default_factory=list)

    def add(self, workflow: Workflow, schedules=()) -> None:
        if workflow.name in self.workflows:
            raise ValueError(f"workflow {workflow.name!r} registered twice")
        self.workflows[workflow.name] = workflow
        self.schedules.extend(schedules)

    def get(self, name: str) -> Workflow:
        try:
            return self.workflows[name]
        except KeyError:
            raise NotFound(f"no workflow named {name!r}; known: {', '.join(sorted(self.workflows))}") from None

    def __iter__(self):
        return iter(sorted(self.workflows.values(), key=lambda w: w.name))


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """Discover every lifecycle module in `workflows/`."""
    import workflows

    registry = Registry()
    for info in sorted(pkgutil.iter_modules(workflows.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"workflows.{info.name}")
        wf = getattr(module, "WORKFLOW", None)
        extra = getattr(module, "SCHEDULES", ())
        if wf is not None:
            registry.add(wf, extra)
        elif extra:
            registry.schedules.extend(extra)
        if hasattr(module, "seed_demo"):
            registry.demo_seeders.append(module.seed_demo)
    return registry
