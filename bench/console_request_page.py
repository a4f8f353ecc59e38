"""How fast the console's request page answers over a large SQLite ledger.

    .venv/bin/python bench/console_request_page.py [--requests 1000000] [--lookups 1000]

Fills a SQLite ledger with ``--requests`` finished requests of one service, each with two
recipients' statuses (copied in SQL from one record the ledger wrote, so the rows are the
ledger's own), then asks the console for ``--lookups`` random requests' pages through
Starlette's test client, in process, and prints the p50, p95 and p99 answer times, for the
HTML page and its JSON twin. The requests were sent, so no dead letter is looked for: what
is measured is the ledger's two reads, the rendering and the guards. No Pub/Sub, no IAP.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.testclient import TestClient  # noqa: E402

from worker.config.settings import Settings  # noqa: E402
from worker.console.app import console_app  # noqa: E402
from worker.console.sources import Sources  # noqa: E402
from worker.ledger import LedgerKey, RecipientStatus, SqliteLedger, StoredResult  # noqa: E402

_RETENTION_S = 8 * 86400.0


def fill(path: Path, count: int) -> None:
    """``count`` requests ``req-1``.. of billing, each sent to two recipients."""
    with SqliteLedger(path, claim_lease_s=60, retention_s=_RETENTION_S) as ledger:
        key = LedgerKey("billing", "template")
        ledger.claim(key, owner="bench", content_hash="0" * 64)
        result = StoredResult("sent", ("ses-template",), recipient_count=2)
        ledger.complete(key, owner="bench", result=result)
        now = dt.datetime.now(dt.UTC)
        ledger.record_statuses(
            key,
            [
                RecipientStatus("ses-template", "alice@example.org", "delivery", now),
                RecipientStatus("ses-template", "bob@example.org", "bounce", now),
            ],
        )
    connection = sqlite3.connect(path)
    with connection:
        _copy(connection, "requests", count)
        _copy(connection, "statuses", count)
    connection.close()


def _copy(connection: sqlite3.Connection, table: str, count: int) -> None:
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    chosen = ", ".join("'req-' || i" if c == "request_id" else f"t.{c}" for c in columns)
    connection.execute(
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "  # noqa: S608
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {chosen} FROM n "
        f"CROSS JOIN (SELECT * FROM {table} WHERE request_id = 'template') AS t",
        (count,),
    )


def timed(client: TestClient, count: int, lookups: int, suffix: str) -> list[float]:
    took = []
    for _ in range(lookups):
        path = f"/request?service=billing&id=req-{random.randint(1, count)}{suffix}"  # noqa: S311
        started = time.perf_counter()
        response = client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return took


def report(name: str, took: list[float]) -> None:
    cuts = statistics.quantiles(took, n=100)
    print(f"{name}: p50 {cuts[49]:.1f} ms, p95 {cuts[94]:.1f} ms, p99 {cuts[98]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ledger.db"
        started = time.monotonic()
        fill(path, args.requests)
        print(f"{args.requests} requests written in {time.monotonic() - started:.0f} s")
        settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "bench"})
        ledger = SqliteLedger(path, claim_lease_s=60, retention_s=_RETENTION_S)
        # A sent request's page reads the ledger only: no Pub/Sub client is needed.
        sources = Sources(settings, ledger, subscriber=None, publisher=None)
        with TestClient(console_app(sources, None), base_url="http://127.0.0.1") as client:
            timed(client, args.requests, 50, "")  # warm up
            report("request page (HTML)", timed(client, args.requests, args.lookups, ""))
            report("JSON twin", timed(client, args.requests, args.lookups, "&format=json"))
        ledger.close()


if __name__ == "__main__":
    main()
