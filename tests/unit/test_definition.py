"""Lifecycle tables and input schemas, without a database."""
from __future__ import annotations

from enum import StrEnum

import pytest

from engine.definition import Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.registry import default_registry
from engine.roles import SYSTEM
from engine.schema import Field, Schema
from workflows import exam_voucher


def test_exam_voucher_graph_is_exactly_the_documented_one():
    pairs = {(s, t.dest or s) for t in exam_voucher.WORKFLOW.transitions for s in t.sources}
    assert pairs == {
        ("applied", "approved"), ("applied", "rejected"), ("applied", "withdrawn"),
        ("approved", "issued"), ("approved", "approved"),
    }
    assert set(exam_voucher.WORKFLOW.final) == {"issued", "rejected", "withdrawn"}


def test_one_shared_machine_without_auto_transitions():
    wf = exam_voucher.WORKFLOW
    assert wf.machine.auto_transitions is False
    assert not any(e.startswith("to_") for e in wf.machine.events)
    assert wf.machine.models == []  # nothing attached per instance


def test_registry_discovers_exam_voucher():
    assert "exam_voucher" in default_registry().workflows


class S(StrEnum):
    a = "a"
    b = "b"


def test_definition_errors_are_reported_at_import_time():
    with pytest.raises(ValueError, match="unknown destination 'zz'"):
        Workflow("bad", "Bad", S, "a", [Transition("go", "a", "zz", {"admin"})])
    with pytest.raises(ValueError, match="no role may fire it"):
        Workflow("bad", "Bad", S, "a", [Transition("go", "a", "b")])
    with pytest.raises(ValueError, match="timer expire: no transition 'expire'"):
        Workflow("bad", "Bad", S, "a", [Transition("expire", "a", "b", {"admin"})],
                 timers=[Timer("a", "expire", after=__import__("datetime").timedelta(days=1))])
    with pytest.raises(ValueError, match="exactly one of"):
        Timer("a", "x")


def test_mermaid_highlights_current_and_reachable_states():
    text = exam_voucher.WORKFLOW.mermaid("applied")
    assert text.startswith("stateDiagram-v2")
    assert "class s_applied current" in text
    reach = [line for line in text.splitlines() if line.strip().endswith("reachable") and line.strip().startswith("class ")]
    assert reach == ["    class s_approved,s_rejected,s_withdrawn reachable"]


SCHEMA = Schema(
    Field("name", "str", max_length=10),
    Field("amount", "money"),
    Field("when", "datetime", required=False),
    Field("day", "date", required=False),
    Field("kind", "choice", choices=("x", "y"), required=False),
    Field("email", "email", required=False),
    Field("items", "list", items=Schema(Field("n", "int", minimum=1)), required=False, max_items=2),
)


def test_schema_cleans_money_as_text_and_instants_in_utc():
    out = SCHEMA.clean({"name": " Ann ", "amount": "12.5", "when": "2026-01-01T08:00:00+08:00", "day": "2026-02-03"})
    assert out == {"name": "Ann", "amount": "12.50", "when": "2026-01-01T00:00:00+00:00", "day": "2026-02-03"}


@pytest.mark.parametrize("data,field,reason", [
    ({"amount": "1"}, "name", "is required"),
    ({"name": "x" * 11, "amount": "1"}, "name", "at most 10"),
    ({"name": "a\r\nBcc: x", "amount": "1"}, "name", "single line"),
    ({"name": "a", "amount": 1.5}, "amount", "never a float"),
    ({"name": "a", "amount": "-1"}, "amount", "must not be negative"),
    ({"name": "a", "amount": "1.001"}, "amount", "more than 2 decimal places"),
    ({"name": "a", "amount": "1e20"}, "amount", "too large"),
    ({"name": "a", "amount": "NaN"}, "amount", "finite"),
    ({"name": "a", "amount": "abc"}, "amount", "not an amount"),
    ({"name": "a", "amount": "1", "when": "2026-01-01T08:00:00"}, "when", "naive datetime refused"),
    ({"name": "a", "amount": "1", "day": "2026-02-30"}, "day", "not a date"),
    ({"name": "a", "amount": "1", "kind": "z"}, "kind", "not one of: x, y"),
    ({"name": "a", "amount": "1", "email": "not-an-email"}, "email", "not a valid email"),
    ({"name": "a", "amount": "1", "items": [{"n": 0}]}, "items[0].n", "at least 1"),
    ({"name": "a", "amount": "1", "items": [{}, {}, {}]}, "items", "at most 2"),
    ({"name": "a", "amount": "1", "extra": 1}, "extra", "unknown field"),
])
def test_schema_refusals_name_the_field(data, field, reason):
    with pytest.raises(ValidationError) as err:
        SCHEMA.clean(data)
    assert err.value.field == field
    assert reason in err.value.reason


def test_schema_exports_json_schema():
    js = SCHEMA.json_schema()
    assert js["required"] == ["name", "amount"]
    assert js["properties"]["kind"]["enum"] == ["x", "y"]
    assert js["additionalProperties"] is False


def test_system_role_name():
    assert SYSTEM == "system"


def _machine_destination(wf, state, event, ctx=None):
    """Ask the shared machine itself, with a fresh model (no kept answer)."""
    from engine.definition import _Model

    model = _Model(state)
    assert wf.machine.events[event].trigger(model, ctx=ctx)
    return model.state


def test_kept_destinations_are_the_machines_own_answers_for_every_lifecycle():
    checked = 0
    for wf in default_registry().workflows.values():
        for state in wf.state_names:
            for event in wf.events_from(state):
                rows = wf.candidates(state, event)
                kept = wf.fixed_destination(state, event)
                if rows[0].when is not None:
                    assert kept is None, (wf.name, state, event)
                    continue
                assert kept == _machine_destination(wf, state, event) == (rows[0].dest or state), (wf.name, state, event)
                checked += 1
    assert checked > 50
    assert default_registry().workflows["exam_voucher"].fixed_destination("issued", "approve") is None  # not allowed


def test_a_branch_condition_is_asked_of_the_machine_every_time():
    from engine.definition import Ctx

    wf = Workflow(
        name="branchy", title="Branchy", states=S, initial=S.a, final=(S.b,), partner_required=False,
        start_schema=Schema(Field("big", "bool", required=False, default=False)), start_roles={SYSTEM},
        transitions=(Transition("go", S.a, S.b, {SYSTEM}, when=lambda ctx: ctx.data["big"]),
                     Transition("go", S.a, S.a, {SYSTEM})),
    )

    def ctx(big):
        return Ctx(workflow=wf, instance_id=1, state="a", data={"big": big}, payload={}, actor=None, now=None,
                   calendar=None, partner=None, conn=None, runtime=None, event="go", comment=None)

    rows = wf.candidates("a", "go")
    assert wf.fixed_destination("a", "go") is None
    assert [wf.apply(rows[0], ctx(True)), wf.apply(rows[1], ctx(False)), wf.apply(rows[0], ctx(True))] == ["b", "a", "b"]
    assert wf._fixed_dest == {}
