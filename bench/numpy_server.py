"""The floor for model serving: a bare uvicorn + numpy scorer, no Pertinent at all.

It answers ``POST /recommendations`` with the same JSON shape as GetRecommendations:
the user's vector (looked up from a random table) times a random items × d float32
matrix, top-k by argpartition, scores as a softmax over the whole catalogue. Whatever
Pertinent adds on top of this (validation, id maps, history encoding, JSON) is the
price of being a real service; bench/serve.py runs both in the same session.

    python bench/numpy_server.py --port 9000 --items 100000 --dim 64
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import orjson
import uvicorn


def make_app(items: int, dim: int, users: int = 10_000, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    table = (rng.standard_normal((items, dim)) / np.sqrt(dim)).astype(np.float32)
    people = rng.standard_normal((users, dim)).astype(np.float32)
    ids = [f"I{i:06d}" for i in range(items)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        req = orjson.loads(body) if body else {}
        n = int(req.get("numResults", 25))
        user = hash(req.get("userId", "")) % users
        logits = table @ people[user]
        top = np.argpartition(-logits, n)[:n]
        top = top[np.argsort(-logits[top])]
        peak = logits[top[0]]
        total = float(np.exp(logits - peak).sum())
        scores = np.exp(logits[top] - peak) / total
        out = orjson.dumps(
            {
                "itemList": [
                    {"itemId": ids[i], "score": float(s)}
                    for i, s in zip(top.tolist(), scores.tolist(), strict=True)
                ],
                "recommendationId": os.urandom(16).hex(),
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.items, args.dim),
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
