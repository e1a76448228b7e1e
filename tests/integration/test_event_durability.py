"""Accepted means durable: every PutEvents / PutItems / PutUsers that got a 200 is still
there after the server and its workers are killed with SIGKILL mid-stream."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from pertinent.config import Settings
from pertinent.store.catalog import Catalog
from pertinent.store.eventlog import group_events, records
from pertinent.testing import ServerProcess, create_dataset, create_group, wait_status

INTERACTIONS = json.dumps(
    {
        "type": "record", "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
        ],
    }
)  # fmt: skip
ITEMS = json.dumps(
    {
        "type": "record", "name": "Items",
        "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRE", "type": "string", "categorical": True},
        ],
    }
)  # fmt: skip
USERS = json.dumps(
    {
        "type": "record", "name": "Users",
        "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "AGE", "type": ["null", "int"]},
        ],
    }
)  # fmt: skip
EVENT_THREADS = 4
# One attempt: a retry after the kill must not be mistaken for an acknowledgement.
NO_RETRY = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10)


class Stream:
    """Client threads that put records until told to stop, noting what got a 200."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked_events: set[str] = set()
        self.acked_items: set[str] = set()
        self.acked_users: set[str] = set()
        self.failures = 0
        self.threads: list[threading.Thread] = []

    def run(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive()

    def events(self, client: Any, tracking_id: str, worker: int) -> None:
        rng = random.Random(worker)
        while not self.stop.is_set():
            ids = [f"ev-{worker}-{uuid.uuid4().hex}" for _ in range(rng.randint(1, 10))]
            batch = [
                {"eventId": i, "eventType": "click", "itemId": f"item-{rng.randrange(500)}",
                 "sentAt": time.time()}
                for i in ids
            ]  # fmt: skip
            try:
                client.put_events(
                    trackingId=tracking_id,
                    userId=f"user-{rng.randrange(100)}",
                    sessionId=f"session-{worker}",
                    eventList=batch,
                )
            except Exception:
                with self.lock:
                    self.failures += 1
                continue  # the server is gone: keep trying until told to stop
            with self.lock:
                self.acked_events.update(ids)

    def records(self, client: Any, items_arn: str, users_arn: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            item, user = f"item-new-{n}", f"user-new-{n}"
            try:
                client.put_items(
                    datasetArn=items_arn,
                    items=[{"itemId": item, "properties": json.dumps({"genre": "a|b"})}],
                )
                with self.lock:
                    self.acked_items.add(item)
                client.put_users(
                    datasetArn=users_arn,
                    users=[{"userId": user, "properties": json.dumps({"age": n % 90})}],
                )
                with self.lock:
                    self.acked_users.add(user)
            except Exception:
                with self.lock:
                    self.failures += 1


def test_acknowledged_records_survive_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = ServerProcess(home, own_group=True).start()
    stream = Stream()
    try:
        pz = server.client("personalize")
        group = create_group(pz, "durable")
        create_dataset(pz, group, "durable-interactions", "Interactions", INTERACTIONS)
        items_arn = create_dataset(pz, group, "durable-items", "Items", ITEMS)
        users_arn = create_dataset(pz, group, "durable-users", "Users", USERS)
        tracker = pz.create_event_tracker(name="durable", datasetGroupArn=group)
        wait_status(
            lambda: pz.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])[
                "eventTracker"
            ]
        )
        for worker in range(EVENT_THREADS):
            stream.run(stream.events, _events_client(server), tracker["trackingId"], worker)
        stream.run(stream.records, _events_client(server), items_arn, users_arn)
        # Kill once the stream is well under way, while requests are in flight.
        deadline = time.time() + 30
        while len(stream.acked_events) < 2000 and time.time() < deadline:
            time.sleep(0.05)
        acked_before_kill = len(stream.acked_events)
        server.kill_group()
        time.sleep(0.5)  # in-flight requests fail against the dead port
    finally:
        stream.stop.set()
        stream.join()
        server.stop()
    assert acked_before_kill >= 2000, "the stream was too slow to test anything"

    with ServerProcess(home) as again:
        # The restarted server answers, and its catalog holds every acknowledged record.
        assert again.client("personalize").describe_dataset_group(datasetGroupArn=group)
        catalog = Catalog(Settings(home=home).catalog_url)
        try:
            with catalog.read() as conn:
                stored = group_events(conn, group, up_to_id=2**62)
                items = {r.record_id for r in records(conn, items_arn)}
                users = {r.record_id for r in records(conn, users_arn)}
        finally:
            catalog.dispose()
    event_ids = stored["event_id"].to_list()
    assert len(event_ids) == len(set(event_ids)), "an event was stored twice"
    missing = stream.acked_events - set(event_ids)
    assert not missing, f"{len(missing)} of {len(stream.acked_events)} acknowledged events lost"
    assert stream.acked_items <= items, stream.acked_items - items
    assert stream.acked_users <= users, stream.acked_users - users
    assert stream.acked_items and stream.acked_users


def _events_client(server: ServerProcess) -> Any:
    # A session per thread: boto3's default session is not thread-safe to create clients.
    return boto3.session.Session().client(
        "personalize-events",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRY,
    )
