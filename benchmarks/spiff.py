"""An approval with a timer boundary event in SpiffWorkflow, against the same lifecycle in partnerflow.

The process: start -> user task "Submit" -> user task "Approve" with a
boundary timer (its date comes from the case data) -> end "approved", or,
when the timer fires first, end "expired". After every step the whole
workflow is serialized with SpiffWorkflow's own JSON serializer into a row of
the same kind of database (a SQLite file, WAL, one commit per step) and read
back before the next step, as a service handling one request per step does.

Half the cases are approved by a person, half expire when their timer has
passed. partnerflow runs the same lifecycle (``bench_approval``): start,
submit, then approve, or expire by the runtime's timer sweep; like the
SpiffWorkflow side, a step does not read a case view back (``view=False``). Whole
lifecycles per second are compared.
"""
from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, func, insert, select, update

from .common import T0, Metric, fresh_database, migrated

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs" targetNamespace="bench">
  <bpmn:process id="approval" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="submit" name="Submit"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="approve" name="Approve"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="deadline" attachedToRef="approve" cancelActivity="true">
      <bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDate>expire_at</bpmn:timeDate></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:endEvent id="approved"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="expired"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="submit"/>
    <bpmn:sequenceFlow id="f2" sourceRef="submit" targetRef="approve"/>
    <bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="approved"/>
    <bpmn:sequenceFlow id="f4" sourceRef="deadline" targetRef="expired"/>
  </bpmn:process>
</bpmn:definitions>
"""

META = MetaData()
CASES = Table("spiff_cases", META, Column("id", Integer, primary_key=True), Column("status", String(16)),
              Column("state", Text))


def _spec():
    from lxml import etree
    from SpiffWorkflow.bpmn.parser import BpmnParser

    parser = BpmnParser()
    parser.add_bpmn_xml(etree.fromstring(BPMN.encode()), filename="approval.bpmn")
    return parser.get_spec("approval")


def spiff_lifecycles(n: int) -> tuple[int, float, dict]:
    """Run `n` whole lifecycles; returns (completed, seconds, outcomes counted from the database)."""
    from SpiffWorkflow import TaskState
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer

    from engine.db import Database

    spec = _spec()
    serializer = BpmnWorkflowSerializer()
    with fresh_database("sqlite", "spiff") as url:
        db = Database(url)
        META.create_all(db.engine)

        def save(conn, cid, wf, status):
            conn.execute(update(CASES).where(CASES.c.id == cid).values(state=serializer.serialize_json(wf),
                                                                       status=status))

        def load(conn, cid):
            return serializer.deserialize_json(conn.execute(select(CASES.c.state).where(CASES.c.id == cid)).scalar_one())

        def complete(wf, name, data=None):
            task = next(t for t in wf.get_tasks(state=TaskState.READY) if t.task_spec.name == name)
            task.data.update(data or {})  # the form's fields
            task.run()
            wf.do_engine_steps()

        t = time.perf_counter()
        for k in range(n):
            expire = k % 2 == 1
            when = datetime.now(UTC) + (timedelta(seconds=-1) if expire else timedelta(days=3))
            with db.write() as conn:  # start
                wf = BpmnWorkflow(spec)
                wf.do_engine_steps()
                cid = conn.execute(insert(CASES).values(status="draft", state="")).inserted_primary_key[0]
                save(conn, cid, wf, "draft")
            with db.write() as conn:  # submit
                wf = load(conn, cid)
                complete(wf, "submit", {"title": f"case {k}", "expire_at": when.isoformat()})
                save(conn, cid, wf, "pending")
            with db.write() as conn:  # approve, or the timer sweep finds it expired
                wf = load(conn, cid)
                if expire:
                    wf.refresh_waiting_tasks()
                    wf.do_engine_steps()
                else:
                    complete(wf, "approve")
                ended = next(tk.task_spec.name for tk in wf.get_tasks(state=TaskState.COMPLETED)
                             if tk.task_spec.name in ("approved", "expired"))
                save(conn, cid, wf, ended if wf.is_completed() else "pending")
        seconds = time.perf_counter() - t
        with db.read() as conn:
            outcomes = dict(conn.execute(select(CASES.c.status, func.count()).group_by(CASES.c.status)).all())
        db.dispose()
    return outcomes.get("approved", 0) + outcomes.get("expired", 0), seconds, outcomes


def ours_lifecycles(n: int) -> tuple[int, float, dict]:
    """The same lifecycles in partnerflow: start, submit, then approve or expire by the timer sweep."""
    from engine.actors import Actor
    from engine.clock import ManualClock
    from engine.models import Instance
    from engine.runtime import Runtime

    from .lifecycle import registry

    I = Instance.__table__
    manager = Actor(login="bench-manager", roles=frozenset({"ecosystem_manager"}))
    with fresh_database("sqlite", "ours-approval") as url:
        db = migrated(url)
        rt = Runtime(db, ManualClock(T0), registry())
        t = time.perf_counter()
        expiring = []
        for k in range(n):
            iid = rt.start("bench_approval", {"title": f"case {k}"}, manager, view=False)["id"]
            rt.fire(iid, "submit", manager, view=False)
            if k % 2 == 0:
                rt.fire(iid, "approve", manager, view=False)
            else:
                expiring.append(iid)
        rt.drain(now=T0 + timedelta(days=3, seconds=1), batch=500)  # the worker's heartbeat
        seconds = time.perf_counter() - t
        with db.read() as conn:
            outcomes = dict(conn.execute(select(I.c.state, func.count()).group_by(I.c.state)).all())
        db.dispose()
    return outcomes.get("approved", 0) + outcomes.get("expired", 0), seconds, outcomes


def run(n: int, runs: int) -> tuple[Metric, Metric]:
    spiff_lifecycles(max(10, n // 10))
    ours_lifecycles(max(10, n // 10))
    theirs, ours = [], []
    for _ in range(runs):
        done, seconds, outcomes = spiff_lifecycles(n)
        if done != n:
            raise RuntimeError(f"SpiffWorkflow finished {done} of {n} lifecycles: {outcomes}")
        theirs.append(done / seconds)
        done, seconds, outcomes = ours_lifecycles(n)
        if done != n:
            raise RuntimeError(f"partnerflow finished {done} of {n} lifecycles: {outcomes}")
        ours.append(done / seconds)
    note = f"{n:,} lifecycles (half approved, half expired), median of {runs}"
    return (Metric("lifecycles_per_s_partnerflow", statistics.median(ours), "lifecycles/s", None, ">=", note, ours),
            Metric("lifecycles_per_s_spiffworkflow", statistics.median(theirs), "lifecycles/s", None, ">=", note, theirs))
