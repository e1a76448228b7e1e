"""The storage suite: the same tests against the embedded SQLite catalog and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pertinent.store.catalog import SCHEMA_VERSION, Catalog, Resource, schema_info
from pertinent.store.eventlog import event_row, insert_events, last_event_id, record, user_events
from pertinent.store.tables import put_records


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    cat = Catalog(url)
    cat.migrate()
    yield cat
    if request.param == "postgres":
        with cat.write() as conn:
            for table in ("resources", "jobs", "dataset_parts", "events", "put_records"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
    cat.dispose()


def res(
    arn: str, kind: str = "dataset-group", created: float | None = None, **kw: object
) -> Resource:
    now = created if created is not None else time.time()
    return Resource(
        arn=arn,
        account_id="000000000000",
        region="us-east-1",
        kind=kind,
        name=arn.rsplit("/", 1)[-1],
        status="CREATE PENDING",
        created_at=now,
        updated_at=now,
        doc={"name": arn, "nested": {"a": [1, 2, {"b": "c"}]}},
        **kw,  # type: ignore[arg-type]
    )


def test_migrate_is_idempotent(catalog: Catalog) -> None:
    catalog.migrate()
    catalog.migrate()
    with catalog.read() as conn:
        version = conn.execute(schema_info.select()).first()
    assert version is not None and int(version._mapping["value"]) == SCHEMA_VERSION


def test_resource_round_trip(catalog: Catalog) -> None:
    with catalog.write() as conn:
        Catalog.insert(conn, res("arn:aws:personalize:us-east-1:000000000000:dataset-group/a"))
    with catalog.read() as conn:
        got = Catalog.get(conn, "arn:aws:personalize:us-east-1:000000000000:dataset-group/a")
    assert got is not None
    assert got.doc["nested"] == {"a": [1, 2, {"b": "c"}]}
    assert got.status == "CREATE PENDING"
    with catalog.write() as conn:
        Catalog.update(conn, got.arn, status="ACTIVE", doc={"x": 1})
    with catalog.read() as conn:
        again = Catalog.get(conn, got.arn)
    assert again is not None and again.status == "ACTIVE" and again.doc == {"x": 1}
    assert again.updated_at >= got.updated_at


def test_failed_transaction_changes_nothing(catalog: Catalog) -> None:
    arn = "arn:aws:personalize:us-east-1:000000000000:dataset-group/rollback"
    with pytest.raises(RuntimeError):
        with catalog.write() as conn:
            Catalog.insert(conn, res(arn))
            raise RuntimeError("boom")
    with catalog.read() as conn:
        assert Catalog.get(conn, arn) is None


def test_pages_are_newest_first_and_complete(catalog: Catalog) -> None:
    base = 1_700_000_000.0
    arns = [f"arn:aws:personalize:us-east-1:000000000000:schema/s{i:02d}" for i in range(7)]
    with catalog.write() as conn:
        for i, arn in enumerate(arns):
            # Two rows share a timestamp: the ARN must break the tie, or a page skips one.
            Catalog.insert(conn, res(arn, kind="schema", created=base + (i // 2)))
    seen: list[str] = []
    after = None
    with catalog.read() as conn:
        while True:
            rows = Catalog.page(
                conn,
                account_id="000000000000",
                region="us-east-1",
                kind="schema",
                limit=3,
                after=after,
            )
            if not rows:
                break
            seen += [r.arn for r in rows]
            after = (rows[-1].created_at, rows[-1].arn)
    assert sorted(seen) == sorted(arns)
    assert len(seen) == len(set(seen))
    assert seen[0] == arns[-1]


def test_children_and_counts(catalog: Catalog) -> None:
    group = "arn:aws:personalize:us-east-1:000000000000:dataset-group/g"
    with catalog.write() as conn:
        Catalog.insert(conn, res(group, group_arn=group))
        for t in ("INTERACTIONS", "ITEMS"):
            Catalog.insert(
                conn,
                res(f"{group}/{t}", kind="dataset", parent_arn=group, group_arn=group),
            )
    with catalog.read() as conn:
        assert len(Catalog.children(conn, kind="dataset", group_arn=group)) == 2
        assert Catalog.count(conn, kind="dataset", statuses=("CREATE PENDING",)) == 2
        assert Catalog.count(conn, kind="dataset", statuses=("ACTIVE",)) == 0


def test_parts_full_replaces_incremental_appends(catalog: Catalog) -> None:
    ds = "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS"
    with catalog.write() as conn:
        assert Catalog.commit_part(conn, ds, "/p/1", 10, "job1", replace=True) == []
        Catalog.commit_part(conn, ds, "/p/2", 5, "job2", replace=False)
    with catalog.read() as conn:
        assert Catalog.parts(conn, ds) == [("/p/1", 10), ("/p/2", 5)]
    with catalog.write() as conn:
        dropped = Catalog.commit_part(conn, ds, "/p/3", 7, "job3", replace=True)
    assert dropped == ["/p/1", "/p/2"]
    with catalog.read() as conn:
        assert Catalog.parts(conn, ds) == [("/p/3", 7)]


def test_queue_claims_each_job_once(catalog: Catalog) -> None:
    with catalog.write() as conn:
        ids = [Catalog.enqueue(conn, "activate", f"arn:{i}") for i in range(20)]
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := catalog.claim(name)) is not None:
            with lock:
                claimed.append(job.id)
            with catalog.write() as conn:
                Catalog.finish(conn, job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_defer_and_not_before(catalog: Catalog) -> None:
    with catalog.write() as conn:
        job_id = Catalog.enqueue(conn, "train", "arn:x")
    job = catalog.claim("w")
    assert job is not None and job.id == job_id and job.attempts == 1
    with catalog.write() as conn:
        Catalog.defer(conn, job_id, time.time() + 0.3)
    assert catalog.claim("w") is None  # not yet due
    time.sleep(0.4)
    again = catalog.claim("w")
    assert again is not None and again.attempts == 1  # a deferral is not an attempt


def test_stale_jobs_are_found_and_requeued(catalog: Catalog) -> None:
    with catalog.write() as conn:
        job_id = Catalog.enqueue(conn, "train", "arn:stale")
    job = catalog.claim("dead-worker")
    assert job is not None
    assert catalog.stale_jobs(lease_seconds=3600) == []
    time.sleep(0.05)
    stale = catalog.stale_jobs(lease_seconds=0.01)
    assert [j.id for j in stale] == [job_id]
    with catalog.write() as conn:
        Catalog.requeue(conn, job_id)
    again = catalog.claim("live-worker")
    assert again is not None and again.id == job_id and again.attempts == 2


def test_request_path_reads_see_committed_events_and_records(catalog: Catalog) -> None:
    group = f"arn:group/{time.time_ns()}"
    with catalog.write() as conn:
        insert_events(
            conn,
            [
                event_row(
                    group,
                    user_id="u1",
                    session_id="s1",
                    item_id="a",
                    timestamp=1.0,
                    event_type="click",
                    event_value=2.5,
                    properties='{"x": 1}',
                ),
                event_row(
                    group,
                    user_id=None,
                    session_id="anon",
                    item_id="b",
                    timestamp=2.0,
                    event_type="view",
                ),
                event_row(
                    group,
                    user_id="u1",
                    session_id="s1",
                    item_id="c",
                    timestamp=3.0,
                    event_type="buy",
                ),
            ],  # fmt: skip
        )
        first = last_event_id(conn, group) - 2
        conn.execute(
            put_records.insert(),
            [
                {
                    "dataset_arn": group,
                    "record_id": "u1",
                    "properties": '{"AGE": "30"}',
                    "updated_at": 1.0,
                }
            ],  # fmt: skip
        )
    got = user_events(catalog, group, "u1", after_id=0)
    assert got == [("a", 1.0, "click", 2.5, '{"x": 1}'), ("c", 3.0, "buy", None, None)]
    assert [r[0] for r in user_events(catalog, group, "u1", after_id=first)] == ["c"]
    assert [r[0] for r in user_events(catalog, group, "anon", after_id=0, by_session=True)] == ["b"]
    assert user_events(catalog, group, "anon", after_id=0) == []
    assert record(catalog, group, "u1") == {"AGE": "30"}
    assert record(catalog, group, "nobody") is None
    # Reads from many threads share the pool and return every connection to it.
    threads = [threading.Thread(target=user_events, args=(catalog, group, "u1"),
                                kwargs={"after_id": 0}) for _ in range(40)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert catalog.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
