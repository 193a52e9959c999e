"""The workflow store contract, run on SQLite (the reference) and on DynamoDB (moto server).

Each contract test runs unchanged on both stores and asserts the same values, so
both give identical results. DynamoDB-only guarantees (racing writers, S3 spill,
size guard, TTL, purge) follow at the end.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from llama_agents.client.protocol.serializable_events import (  # type: ignore[import-untyped]
    EventEnvelopeWithMetadata,
)
from llama_agents.server import (
    AbstractWorkflowStore,
    HandlerQuery,
    PersistentHandler,
    SqliteWorkflowStore,
)
from workflows.events import Event, StopEvent

from llamaws.adapter.store import DynamoSettings, DynamoWorkflowStore, StoreError
from llamaws.adapter.store.table import TTL_ATTRIBUTE, handler_key, run_key

from .engines import MotoServer


class Note(Event):
    text: str
    weight: float = 0.0


def envelope(event: Event) -> EventEnvelopeWithMetadata:
    return EventEnvelopeWithMetadata.from_event(event)


def dynamo_store(
    moto: MotoServer, table: str, *, bucket: str | None = "llamaws-spill"
) -> DynamoWorkflowStore:
    store = DynamoWorkflowStore(
        DynamoSettings(
            table_name=table, endpoint_url=moto.endpoint, s3_bucket=bucket, poll_interval=0.2
        )
    )
    store.create_resources()
    return store


@pytest.fixture(params=["sqlite", "dynamodb"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, dynamo_table_name: str
) -> AsyncIterator[AbstractWorkflowStore]:
    if request.param == "sqlite":
        yield SqliteWorkflowStore(str(tmp_path / "workflows.db"), poll_interval=0.05)
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        yield await asyncio.to_thread(dynamo_store, moto, dynamo_table_name)


T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)

# (handler id, run id, workflow, status, idle)
HANDLERS = [
    ("h0", "r0", "alpha", "running", False),
    ("h1", "r1", "alpha", "running", True),
    ("h2", "r2", "alpha", "completed", False),
    ("h3", "r3", "beta", "failed", False),
    ("h4", "r4", "beta", "cancelled", False),
    ("h5", "r5", "beta", "running", True),
]


async def seed_handlers(store: AbstractWorkflowStore) -> None:
    for i, (handler_id, run_id, workflow, status, idle) in enumerate(HANDLERS):
        await store.update(
            PersistentHandler(
                handler_id=handler_id,
                workflow_name=workflow,
                status=status,  # type: ignore[arg-type]
                run_id=run_id,
                started_at=T0 + timedelta(seconds=i),
                updated_at=T0 + timedelta(seconds=i),
                idle_since=T0 if idle else None,
            )
        )


def expected_ids(query: HandlerQuery) -> list[str]:
    found = []
    for handler_id, run_id, workflow, status, idle in HANDLERS:
        checks = [
            (query.handler_id_in, handler_id),
            (query.run_id_in, run_id),
            (query.workflow_name_in, workflow),
            (query.status_in, status),
        ]
        if any(allowed is not None and value not in allowed for allowed, value in checks):
            continue
        if query.is_idle is not None and query.is_idle != idle:
            continue
        found.append(handler_id)
    return found


QUERIES = [
    HandlerQuery(
        handler_id_in=handler_ids,
        run_id_in=run_ids,
        workflow_name_in=workflows,
        status_in=statuses,  # type: ignore[arg-type]
        is_idle=idle,
    )
    for handler_ids, run_ids, workflows, statuses, idle in itertools.product(
        [None, ["h0", "h3", "h5"], []],
        [None, ["r0", "r1", "r3"], []],
        [None, ["alpha"], []],
        [None, ["running", "failed"], []],
        [None, True, False],
    )
]


async def test_query_matches_every_filter_combination(store: AbstractWorkflowStore) -> None:
    await seed_handlers(store)
    for query in QUERIES:
        found = sorted(h.handler_id for h in await store.query(query))
        assert found == expected_ids(query), query


async def test_update_replaces_the_handler_and_its_status_index(
    store: AbstractWorkflowStore,
) -> None:
    await seed_handlers(store)
    [handler] = await store.query(HandlerQuery(handler_id_in=["h0"]))
    handler.status = "completed"
    handler.completed_at = T0 + timedelta(minutes=1)
    await store.update(handler)

    running = await store.query(HandlerQuery(status_in=["running"]))
    completed = await store.query(HandlerQuery(status_in=["completed"]))
    assert sorted(h.handler_id for h in running) == ["h1", "h5"]
    assert sorted(h.handler_id for h in completed) == ["h0", "h2"]
    assert len(await store.query(HandlerQuery())) == len(HANDLERS)


async def test_handler_fields_round_trip_with_result_error_and_timezones(
    store: AbstractWorkflowStore,
) -> None:
    plus_two = timezone(timedelta(hours=2))
    handler = PersistentHandler(
        handler_id="hx",
        workflow_name="alpha",
        status="failed",
        run_id="rx",
        error="ValueError: bad input\n  at step 3",
        result=StopEvent(result={"score": 0.1 + 0.2, "items": [1, 2.5, "três"], "none": None}),
        started_at=T0,
        updated_at=T0.astimezone(plus_two),
        completed_at=T0 + timedelta(microseconds=1),
        idle_since=None,
    )
    await store.update(handler)
    [loaded] = await store.query(HandlerQuery(handler_id_in=["hx"]))

    assert loaded.model_dump() == handler.model_dump()
    assert loaded.result is not None
    assert loaded.result.result == {
        "score": 0.30000000000000004,
        "items": [1, 2.5, "três"],
        "none": None,
    }
    assert loaded.updated_at is not None and loaded.updated_at.utcoffset() == timedelta(hours=2)
    assert loaded.error == "ValueError: bad input\n  at step 3"


async def test_update_handler_status_finds_the_handler_by_run_id(
    store: AbstractWorkflowStore,
) -> None:
    await seed_handlers(store)
    await store.update_handler_status("r1", status="completed", result=StopEvent(result="done"))
    await store.update_handler_status("r5", idle_since=None)
    await store.update_handler_status("missing-run", status="failed")

    [h1] = await store.query(HandlerQuery(run_id_in=["r1"]))
    [h5] = await store.query(HandlerQuery(handler_id_in=["h5"]))
    assert (h1.status, h1.result, h1.completed_at is not None) == (
        "completed",
        StopEvent(result="done"),
        True,
    )
    assert h5.idle_since is None and h5.status == "running"


async def test_delete_by_query_removes_only_matching_handlers(
    store: AbstractWorkflowStore,
) -> None:
    await seed_handlers(store)
    assert await store.delete(HandlerQuery()) == 0
    assert await store.delete(HandlerQuery(status_in=[])) == 0
    assert await store.delete(HandlerQuery(workflow_name_in=["beta"], status_in=["running"])) == 1
    assert await store.delete(HandlerQuery(handler_id_in=["h0", "h2", "nope"])) == 2
    remaining = sorted(h.handler_id for h in await store.query(HandlerQuery()))
    assert remaining == ["h1", "h3", "h4"]


async def test_events_are_numbered_from_zero_and_queried_after_a_sequence(
    store: AbstractWorkflowStore,
) -> None:
    for i in range(7):
        await store.append_event("run", envelope(Note(text=f"n{i}", weight=i / 3)))
    await store.append_event("other", envelope(Note(text="elsewhere")))

    everything = await store.query_events("run")
    assert [e.sequence for e in everything] == list(range(7))
    assert [e.event.value["text"] for e in everything] == [f"n{i}" for i in range(7)]
    assert everything[4].event.value["weight"] == 4 / 3
    assert everything[0].event.qualified_name.endswith("Note")
    assert [e.sequence for e in await store.query_events("run", after_sequence=-1)] == list(
        range(7)
    )
    assert [e.sequence for e in await store.query_events("run", after_sequence=3)] == [4, 5, 6]
    assert [e.sequence for e in await store.query_events("run", after_sequence=1, limit=2)] == [
        2,
        3,
    ]
    assert [e.sequence for e in await store.query_events("run", limit=3)] == [0, 1, 2]
    assert await store.query_events("run", after_sequence=6) == []
    assert await store.query_events("nobody") == []
    assert [e.sequence for e in await store.query_events("other")] == [0]


async def test_subscribe_yields_events_until_the_terminal_one(
    store: AbstractWorkflowStore,
) -> None:
    await store.append_event("run", envelope(Note(text="before")))

    async def collect() -> list[int]:
        return [e.sequence async for e in store.subscribe_events("run", after_sequence=-1)]

    reader = asyncio.create_task(collect())
    await asyncio.sleep(0)
    for i in range(3):
        await store.append_event("run", envelope(Note(text=f"live {i}")))
    await store.append_event("run", envelope(StopEvent(result="end")))
    await store.append_event("run", envelope(Note(text="after the end")))

    assert await asyncio.wait_for(reader, timeout=10) == [0, 1, 2, 3, 4]
    resumed = [e.sequence async for e in store.subscribe_events("run", after_sequence=2)]
    assert resumed == [3, 4]


async def test_ticks_are_kept_in_order_with_their_data(store: AbstractWorkflowStore) -> None:
    ticks = [
        {"kind": "step", "n": i, "ratio": i / 7, "nested": {"ok": i % 2 == 0}} for i in range(12)
    ]
    for tick in ticks:
        await store.append_tick("run", tick)

    stored = await store.get_ticks("run")
    streamed = [t async for t in store.stream_ticks("run")]
    assert [t.sequence for t in stored] == list(range(12))
    assert [t.tick_data for t in stored] == ticks
    assert [t.tick_data for t in streamed] == ticks
    assert await store.get_ticks("other") == []


async def test_state_store_get_set_and_edit_are_durable(store: AbstractWorkflowStore) -> None:
    state = store.create_state_store("run")
    assert await state.get("missing", default="fallback") == "fallback"
    await state.set("counter", 1)
    await state.set("profile", {"name": "Ada", "score": 0.1 + 0.2})
    async with state.edit_state() as editable:
        editable["counter"] = editable["counter"] + 41
    child = store.create_state_store("run", namespace=("child",))
    await child.set("only", "here")

    store._state_store_cache.clear()
    fresh = store.create_state_store("run")
    assert await fresh.get("counter") == 42
    assert await fresh.get("profile") == {"name": "Ada", "score": 0.30000000000000004}
    assert await fresh.get("only", default=None) is None
    fresh_child = store.create_state_store("run", namespace=("child",))
    assert await fresh_child.get("only") == "here"


# -- DynamoDB only -------------------------------------------------------------------


async def test_concurrent_appends_get_each_sequence_exactly_once(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    # Three store instances stand for three processes racing on one run.
    writers = [dynamo_store(moto_server, dynamo_table_name) for _ in range(3)]
    lost_races: list[str] = []

    def count_lost(parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            lost_races.append("lost")

    for writer in writers:
        writer.table.client.meta.events.register("after-call.dynamodb.PutItem", count_lost)
    await asyncio.gather(
        *(writers[i % 3].append_event("run", envelope(Note(text=f"e{i}"))) for i in range(50))
    )

    events = await writers[0].query_events("run")
    assert [e.sequence for e in events] == list(range(50))
    assert sorted(e.event.value["text"] for e in events) == sorted(f"e{i}" for i in range(50))
    assert lost_races, "the writers never raced: the conditional path went untested"


async def test_concurrent_ticks_from_two_processes_are_gap_free(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    first, second = (dynamo_store(moto_server, dynamo_table_name) for _ in range(2))
    await asyncio.gather(
        *((first if i % 2 else second).append_tick("run", {"n": i}) for i in range(20))
    )
    ticks = await first.get_ticks("run")
    assert [t.sequence for t in ticks] == list(range(20))
    assert sorted(t.tick_data["n"] for t in ticks) == list(range(20))


async def test_one_megabyte_state_round_trips_through_s3(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    store = dynamo_store(moto_server, dynamo_table_name)
    blob = "x" * 1_000_000
    await store.create_state_store("run").set("blob", blob)
    await store.append_event("run", envelope(Note(text=blob)))

    store._state_store_cache.clear()
    assert await store.create_state_store("run").get("blob") == blob
    [event] = await store.query_events("run")
    assert event.event.value["text"] == blob
    raw = store.table.client.get_item(
        TableName=dynamo_table_name, Key={"PK": {"S": run_key("run")}, "SK": {"S": "S#"}}
    )["Item"]
    assert "spill" in raw and "data" not in raw


async def test_oversized_item_without_a_bucket_fails_naming_the_table(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    store = dynamo_store(moto_server, dynamo_table_name, bucket=None)
    with pytest.raises(StoreError, match=dynamo_table_name):
        await store.append_tick("run", {"big": "y" * 410_000})
    assert await store.get_ticks("run") == []


async def test_missing_table_error_names_table_and_operation(moto_server: MotoServer) -> None:
    store = DynamoWorkflowStore(
        DynamoSettings(table_name="no-such-table", endpoint_url=moto_server.endpoint)
    )
    with pytest.raises(StoreError, match=r"GetItem on table 'no-such-table'.*ResourceNotFound"):
        await store.query(HandlerQuery(handler_id_in=["h"]))


async def test_finished_handler_gets_an_expiry_after_the_retention(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    store = dynamo_store(moto_server, dynamo_table_name)
    await seed_handlers(store)
    await store.update_handler_status("r0", status="completed")

    def expiry(handler_id: str) -> Any:
        item = store.table.client.get_item(
            TableName=dynamo_table_name, Key=store.table.marshal(handler_key(handler_id))
        )["Item"]
        return item.get(TTL_ATTRIBUTE)

    assert expiry("h1") is None
    ttl = int(expiry("h0")["N"])
    expected = datetime.now(UTC) + store.settings.retention
    assert abs(ttl - expected.timestamp()) < 60


async def test_delete_also_removes_the_runs_events_ticks_and_state(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    store = dynamo_store(moto_server, dynamo_table_name)
    await seed_handlers(store)
    await store.append_event("r3", envelope(Note(text="gone")))
    await store.append_tick("r3", {"n": 1})
    await store.create_state_store("r3").set("k", "v")

    assert await store.delete(HandlerQuery(handler_id_in=["h3"])) == 1
    assert await store.query_events("r3") == []
    assert await store.get_ticks("r3") == []
    store._state_store_cache.clear()
    assert await store.create_state_store("r3").get("k", default=None) is None


async def test_purge_leaves_nothing_of_the_handler_in_the_table(
    moto_server: MotoServer, dynamo_table_name: str
) -> None:
    from llamaws.adapter.lambda_runtime.coordination import Coordination, InboxEntry
    from llamaws.adapter.store.table import wait_due_key, wait_key

    store = dynamo_store(moto_server, dynamo_table_name)
    await seed_handlers(store)
    for run_id in ("r3", "r4"):
        for i in range(30):  # more than one batch of 25
            await store.append_event(run_id, envelope(Note(text=f"e{i}")))
            await store.append_tick(run_id, {"n": i})
        await store.create_state_store(run_id).set("k", "v")
    coordination = Coordination(store.table, owner="container-1")
    for handler_id in ("h3", "h4"):
        assert await coordination.acquire(handler_id)
        await coordination.post(handler_id, InboxEntry("event", event={"x": 1}))
        await store.table.put(
            {**wait_key(handler_id, "s3cret"), **wait_due_key(10**12, "tok"), "status": "open"},
            payload=(),
        )
    await store.table.put({"PK": run_key("r3"), "SK": "C#0000000010", "data": "{}"}, payload=())

    assert await store.delete(HandlerQuery(handler_id_in=["h3"])) == 1

    def scan() -> list[dict[str, Any]]:
        client = store.table.client
        pages = client.get_paginator("scan").paginate(TableName=dynamo_table_name)
        return [store.table.unmarshal(item) for page in pages for item in page["Items"]]

    items = await asyncio.to_thread(scan)
    assert not [i for i in items if i["PK"] in ("H#h3", run_key("r3"))]
    assert not [i for i in items if "h3" in str(i.get("handler_id", ""))]
    kept = {i["PK"] for i in items}
    assert {"H#h4", run_key("r4")} <= kept, "another handler's items stay"
    assert len([i for i in items if i["PK"] == "H#h4"]) == 4  # handler, lease, inbox, token


async def test_sqlite_purge_leaves_no_row_of_the_handler(tmp_path: Path) -> None:
    import sqlite3

    from llamaws.adapter.sqlite_store import PurgingSqliteStore
    from llamaws.adapter.waits.stores import SqliteTokenStore

    db = tmp_path / "workflows.db"
    store = PurgingSqliteStore(str(db))
    SqliteTokenStore(str(db))  # its table, as the emulator creates it
    await seed_handlers(store)
    for run_id in ("r3", "r4"):
        await store.append_event(run_id, envelope(Note(text="e")))
        await store.append_tick(run_id, {"n": 1})
        await store.create_state_store(run_id).set("k", "v")
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(llamaws_wait_tokens)")]
        for handler_id, run_id in (("h3", "r3"), ("h4", "r4")):
            row = {c: 0 for c in columns} | {
                "token": f"t-{handler_id}",
                "handler_id": handler_id,
                "run_id": run_id,
                "status": "open",
            }
            conn.execute(
                f"INSERT INTO llamaws_wait_tokens ({','.join(row)}) "
                f"VALUES ({','.join('?' * len(row))})",
                tuple(row.values()),
            )

    assert await store.delete(HandlerQuery(handler_id_in=["h3"])) == 1

    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        left = {
            table: conn.execute(f"SELECT * FROM {table}").fetchall()
            for table in tables
            if table != "schema_migrations"
        }
    assert not [
        (table, row) for table, rows in left.items() for row in rows if {"h3", "r3"} & set(row)
    ]
    assert any("r4" in row for row in left["ticks"]) and any("h4" in r for r in left["handlers"])
