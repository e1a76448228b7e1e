"""GetRecommendations throughput and latency through the real HTTP server.

Starts `pertinent serve`, loads generated e-commerce data through boto3, trains and
deploys popularity-count and SIMS campaigns, then drives them with `wrk` (C, keep-alive
connections) beside a baseline: the same server's trivial `/ping` route, i.e. the floor
the HTTP stack itself sets, measured in the same run. Client and server CPU time are
both recorded, since on a 2-core box the load generator competes with the server.

    .venv/bin/python bench/serve.py [--duration 10] [--connections 16]
    .venv/bin/python bench/serve.py --scenario up   # user-personalization, 100k items
    .venv/bin/python bench/serve.py --scenario up --up-recipe aws-hrnn   # the legacy HRNN
    .venv/bin/python bench/serve.py --scenario filter   # filters on a 100k-item catalogue
    ... --pause-pid PID   # SIGSTOP another process (a long benchmark) while timing

``--scenario up`` trains aws-user-personalization (or ``--up-recipe``; hidden_dimension
64) on a generated catalogue of ``--up-items`` (100k) items and drives it beside
bench/numpy_server.py, a
bare uvicorn + numpy scorer of the same size and width: the floor for answering with a
d=64 model over 100k items. Training runs one epoch there (PERTINENT_MAX_EPOCHS=1):
this measures serving, not quality (bench/quality.py does that). Both are driven at
each of ``--up-connections`` (4, 8, 16): the server gathers concurrent requests into
batches (serving/batching.py), so throughput grows and latency with it as more requests
are in flight; a closed loop's mean latency is connections / throughput. The same
home is then served again with two HTTP processes (``PERTINENT_HTTP_PROCESSES=2``).

``--scenario filter`` serves a popularity-count campaign over ``--up-items`` (100k) items
with Items metadata, the same requests without a filter and with each kind of filter:
literal values (a cached mask), placeholders (posting lists and a numeric comparison
per request), and the user's interactions (a per-request read of the event log), so
the difference is what a filter costs: at one connection (a request's own latency) and
at ``--filter-connections``' others (16: the server saturated, where a filter's CPU also
lengthens the queue every request waits in).

Prints a table and writes bench/results/serve.json (serve_up.json, serve_filter.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import wrk
from pertinent.demo.generate import DemoData, generate
from pertinent.testing import (
    ServerProcess,
    create_dataset,
    create_group,
    deploy,
    import_data,
    train,
    wait_status,
)

RESULTS = Path(__file__).resolve().parent / "results"

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local ids = {%(ids)s}
request = function()
  local id = ids[math.random(#ids)]
  local body = '{"campaignArn":"%(arn)s","%(key)s":"' .. id .. '","numResults":25%(extra)s}'
  return wrk.format(nil, "/recommendations", nil, body)
end
"""


def run_wrk(
    server: ServerProcess,
    path: str,
    script: Path | None,
    args: argparse.Namespace,
    connections: int | None = None,
) -> dict[str, float]:
    return wrk.run_wrk(
        server.url + path,
        server.pid,
        connections=connections or args.connections,
        duration=args.duration,
        threads=args.threads,
        script=script,
        pause_pid=args.pause_pid,
    )


def setup(server: ServerProcess, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    data = generate(work / "data", users=args.users, items=args.items, seed=1)
    pz = server.client("personalize")
    group = create_group(pz, "bench-serve")
    ds = create_dataset(pz, group, "bench-interactions", "Interactions", data.interactions_schema)
    job = import_data(pz, ds, "bench-import", data.interactions_csv.as_uri())
    assert job["status"] == "ACTIVE", job
    campaigns = {}
    for recipe in ("aws-popularity-count", "aws-sims"):
        version = train(pz, group, f"bench-{recipe}", recipe)
        assert version["status"] == "ACTIVE", version
        campaigns[recipe] = deploy(pz, f"bench-{recipe}", version["solutionVersionArn"])
    return {
        "campaigns": campaigns,
        "users": list(data.user_taste),
        "items": list(data.item_category),
    }


def setup_up(server: ServerProcess, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    data = generate(work / "data", users=args.up_users, items=args.up_items, seed=1)
    pz = server.client("personalize")
    group = _shop_group(pz, "bench-serve-up", data)
    config = {"algorithmHyperParameters": {"hidden_dimension": "64"}}
    version = train(pz, group, "bench-up", args.up_recipe, config, timeout=3600)
    assert version["status"] == "ACTIVE", version
    campaign = deploy(pz, "bench-up", version["solutionVersionArn"])
    return {"campaign": campaign, "users": list(data.user_taste)}


def _shop_group(pz: Any, name: str, data: DemoData) -> str:
    """A dataset group holding the generated interactions and items, imported."""
    group = create_group(pz, name)
    for kind, schema, path in (
        ("Interactions", data.interactions_schema, data.interactions_csv),
        ("Items", data.items_schema, data.items_csv),
    ):
        ds = create_dataset(pz, group, f"{name}-{kind.lower()}", kind, schema)
        job = import_data(pz, ds, f"{name}-{kind.lower()}", path.as_uri())
        assert job["status"] == "ACTIVE", job
    return group


def run_up(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(0)
    rows: dict[str, Any] = {}
    env = {"PERTINENT_MAX_EPOCHS": "1"}
    with ServerProcess(work / "server-up", env=env) as server:
        ready = setup_up(server, work, args)
        ids = ",".join(f'"{i}"' for i in rng.sample(ready["users"], 2000))
        script = work / "up.lua"
        script.write_text(
            LUA % {"ids": ids, "arn": ready["campaign"], "key": "userId", "extra": ""}
        )
        # The first request loads the model into the serving process: not what we time.
        rt = server.client("personalize-runtime")
        rt.get_recommendations(campaignArn=ready["campaign"], userId=ready["users"][0])
        rows["/ping (HTTP floor)"] = run_wrk(server, "/ping", None, args)
        # Batching trades latency for throughput with the number of requests in flight:
        # each connection count is its own closed-loop run.
        for c in args.up_connections:
            name = f"GetRecommendations {args.up_recipe} ({args.up_items // 1000}k items"
            rows[f"{name}, {c} conns)"] = run_wrk(server, "/", script, args, c)
    # The same home served by two HTTP processes (PERTINENT_HTTP_PROCESSES): each scores
    # on its own core, where one process leaves its event loop's core mostly idle.
    env["PERTINENT_HTTP_PROCESSES"] = "2"
    with ServerProcess(work / "server-up", env=env, workers=0) as server:
        # Each process loads the model on its first request, on its own connections.
        # (16 connections for 6 s: with 8 for 3 s, one process could be left without a
        # connection, and load the model inside a timed run, a 1.3 s stall at p99.)
        wrk.run_wrk(server.url + "/", server.pid, connections=16, duration=6, script=script)
        for c in args.up_connections:
            name = f"GetRecommendations {args.up_recipe}, 2 HTTP processes ({c} conns)"
            rows[name] = run_wrk(server, "/", script, args, c)
    bare = _numpy_server(work, args)
    try:
        for c in args.up_connections:
            name = f"bare numpy scorer ({args.up_items // 1000}k items, d=64, {c} conns)"
            rows[name] = run_wrk(bare, "/recommendations", script, args, c)
    finally:
        bare.stop()
    return rows


FILTERS = {
    "literal": ('EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("electronics", "books")', None),
    "placeholders": (
        "INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CATS) AND Items.PRICE <= $PRICE",
        {"CATS": '"fashion","home","toys"', "PRICE": "60"},
    ),
    "interactions": ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("View", "Purchase")', None),
}


def run_filter(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(0)
    rows: dict[str, Any] = {}
    with ServerProcess(work / "server-filter") as server:
        data = generate(work / "data", users=args.up_users, items=args.up_items, seed=1)
        pz = server.client("personalize")
        group = _shop_group(pz, "bench-filter", data)
        version = train(pz, group, "bench-filter", "aws-popularity-count")
        campaign = deploy(pz, "bench-filter", version["solutionVersionArn"])
        rt = server.client("personalize-runtime")
        ids = ",".join(f'"{i}"' for i in rng.sample(list(data.user_taste), 2000))
        runs: dict[str, str] = {"no filter": ""}
        for name, (expression, values) in FILTERS.items():
            arn = pz.create_filter(
                name=f"bench-{name}", datasetGroupArn=group, filterExpression=expression
            )["filterArn"]
            wait_status(lambda arn=arn: pz.describe_filter(filterArn=arn)["filter"])
            extra: dict[str, Any] = {"filterArn": arn}
            if values:
                extra["filterValues"] = values
            # Warm: the first request builds the catalogue's posting lists and masks.
            user = next(iter(data.user_taste))
            got = rt.get_recommendations(campaignArn=campaign, userId=user, **extra)["itemList"]
            assert got, name
            lua = json.dumps(extra)[1:-1].replace("\\", "\\\\").replace("'", "\\'")
            runs[f"filter: {name}"] = "," + lua
        rt.get_recommendations(campaignArn=campaign, userId=next(iter(data.user_taste)))
        scripts = {}
        for label, extra_lua in runs.items():
            scripts[label] = work / f"filter-{len(scripts)}.lua"
            scripts[label].write_text(
                LUA % {"ids": ids, "arn": campaign, "key": "userId", "extra": extra_lua}
            )
        # One connection: a request's own latency, nothing queued before it. Sixteen: the
        # server saturated, where a filter's CPU also lengthens every queue.
        for c in args.filter_connections:
            base = None
            for label, script in scripts.items():
                r = run_wrk(server, "/", script, args, c)
                base = base or r
                r["added_p99_ms"] = r["p99_ms"] - base["p99_ms"]
                r["added_server_us"] = (
                    r["server_cpu_us_per_request"] - base["server_cpu_us_per_request"]
                )
                rows[f"popularity {args.up_items // 1000}k items, {c} conns, {label}"] = r
    return rows


class _Bare(ServerProcess):
    """bench/numpy_server.py in a child process, started and stopped as a server is."""

    def start(self, timeout: float = 60) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("numpy_server.py")),
                 "--port", str(self.port), "--items", str(self.items), "--dim", "64"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"numpy_server did not start: {self.log.read_text()[-2000:]}")

    items = 100_000


def _numpy_server(work: Path, args: argparse.Namespace) -> ServerProcess:
    bare = _Bare(work / "bare")
    bare.items = args.up_items
    return bare.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scenario", choices=("basic", "up", "filter"), default="basic")
    parser.add_argument("--up-items", type=int, default=100_000)
    parser.add_argument("--up-users", type=int, default=20_000)
    parser.add_argument("--up-connections", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--up-recipe", default="aws-user-personalization")
    parser.add_argument("--filter-connections", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--pause-pid",
        type=int,
        default=None,
        help="SIGSTOP this process while each measurement runs (a long benchmark "
        "sharing the machine), SIGCONT after",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="pertinent-bench-serve-"))
    rng = random.Random(0)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "args": vars(args)}
    if args.scenario == "filter":
        rows = run_filter(args, work)
        _report(rows, results, "serve_filter.json", next(iter(rows)))
        for name, r in rows.items():
            print(f"{name:60} {r['added_p99_ms']:+.2f} ms p99, {r['added_server_us']:+.0f} µs CPU")
        shutil.rmtree(work, ignore_errors=True)
        return
    if args.scenario == "up":
        up = args.up_recipe.removeprefix("aws-")
        out = "serve_up.json" if up == "user-personalization" else f"serve_up_{up}.json"
        _report(run_up(args, work, results), results, out, "/ping (HTTP floor)")
        shutil.rmtree(work, ignore_errors=True)
        return
    with ServerProcess(work / "server") as server:
        ready = setup(server, work, args)
        rows = {"baseline /ping (HTTP floor)": run_wrk(server, "/ping", None, args)}
        for recipe, key, pool in (
            ("aws-popularity-count", "userId", ready["users"]),
            ("aws-sims", "itemId", ready["items"]),
        ):
            ids = ",".join(f'"{i}"' for i in rng.sample(pool, min(len(pool), 2000)))
            warm = {"campaignArn": ready["campaigns"][recipe], key: pool[0]}
            server.client("personalize-runtime").get_recommendations(**warm)
            script = work / f"{recipe}.lua"
            script.write_text(
                LUA % {"ids": ids, "arn": ready["campaigns"][recipe], "key": key, "extra": ""}
            )
            rows[f"GetRecommendations {recipe}"] = run_wrk(server, "/", script, args)
    _report(rows, results, "serve.json", "baseline /ping (HTTP floor)")
    shutil.rmtree(work, ignore_errors=True)


def _report(rows: dict[str, Any], results: dict[str, Any], out: str, baseline: str) -> None:
    results["rows"] = rows
    header = (
        f"{'path':58} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'srv µs/req':>10} "
        f"{'cli µs/req':>10} {'errors':>6}"
    )
    print(header)
    for name, r in rows.items():
        print(
            f"{name:58} {r['rps']:8.0f} {r.get('p50_ms', 0):7.2f} {r.get('p99_ms', 0):7.2f} "
            f"{r['server_cpu_us_per_request']:10.0f} {r['client_cpu_us_per_request']:10.0f} "
            f"{r['errors']:6.0f}"
        )
    base = rows[baseline]["rps"]
    for r in rows.values():
        r["ratio_to_baseline"] = r["rps"] / base if base else 0.0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {RESULTS / out}")


if __name__ == "__main__":
    main()
