"""Document search benchmark: `GET /api/v1/documents?q=` over 1,000 meeting documents.

The issue's target: a search over 1,000 documents answers in under 100 ms. For each
database (SQLite's FTS5, PostgreSQL's text search):

1. `prepare_database` migrates and syncs the roster; 100 conferences are booked through
   the API (the provincial office and 3 to 10 districts each), and 1,000 documents are
   stored with `documents.store.add` (the upload's own write: the row, its content, the
   search index), ten per conference. Each document's text is ~2,500 characters of
   Vietnamese office prose drawn from a fixed vocabulary with a fixed seed, so every
   run searches the same texts.
2. The real app (`create_app`) on 127.0.0.1: a mix of queries (one to three words, with
   and without diacritics, whole words and prefixes, common and rare) timed end to end
   through HTTP, as the admin (every document) and as a district's operator (only the
   documents of its conferences: the access filter runs in the query).

Every figure is the median / p95 / p99 / max of `--samples` searches in milliseconds,
after `--warmup` uncounted ones. A table goes to stderr, one JSON line to stdout, with
the load average before and after (other processes skew the figures).

    .venv/bin/python bench/documents.py                 # SQLite and PostgreSQL
    .venv/bin/python bench/documents.py --db sqlite --documents 1000 --samples 300
"""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy
from aiohttp import web

from bench.shared import cpu_model, log, on_each_database, percentile
from documents import store
from documents.file_types import PDF
from vcbridge.app import create_app
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.clock import FixedClock
from vcbridge.core.settings import Settings

TARGET_P95_MS = 100.0
SEED = 20261206
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 08:00 in Hanoi
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 - a scratch database's account
OPERATOR = ("bench-op-nga-son", "bench-operator-password", "HUYEN-NGA-SON")
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONTENT_BYTES = 20_000  # each document's file: its bytes do not take part in a search

# Words of provincial meeting documents, most frequent first (drawn with Zipf weights).
VOCABULARY = """
của và các trong năm được cho theo với tỉnh huyện xã công tác thực hiện kế hoạch báo cáo
nhân dân ủy ban chỉ đạo triển khai đề nghị tình hình kinh tế xã hội phát triển đầu tư
dự án ngân sách nhà nước giao thông nông thôn đường cầu trường học trạm y tế phòng chống
thiên tai bão lũ lụt sạt lở kè sông đê điều thủy lợi nước sạch môi trường rác thải đất đai
quy hoạch giải phóng mặt bằng tái định cư hộ nghèo an sinh bảo hiểm việc làm lao động
doanh nghiệp hợp tác xã nông nghiệp lúa ngô mía chăn nuôi thủy sản lâm nghiệp rừng du lịch
văn hóa thể thao giáo dục đào tạo học sinh giáo viên cán bộ công chức viên chức cải cách
hành chính chuyển đổi số dịch vụ công trực tuyến một cửa hồ sơ thủ tục quốc phòng an ninh
trật tự an toàn tai nạn phòng cháy chữa cháy dịch bệnh tiêm chủng quý tháng tuần kết quả
tồn tại hạn chế nguyên nhân giải pháp nhiệm vụ trọng tâm thời gian tới đôn đốc kiểm tra
giám sát thanh tra khiếu nại tố cáo tiếp công dân Nga Sơn Hậu Lộc Hoằng Hóa Thọ Xuân Quảng
Xương Tĩnh Gia Mường Lát Quan Hóa Bá Thước Cẩm Thủy Yên Định Vĩnh Lộc Thạch Thành Hà Trung
Bỉm Sơn Sầm Sơn Thanh Hóa Đông Sơn Nông Cống Triệu Sơn Thiệu Hóa Ngọc Lặc Lang Chánh
""".split()  # noqa: SIM905 - prose reads better than a list of 200 strings

# The measured queries, cycled: diacritics and none, whole words and prefixes, frequent
# and rare words, one to three words.
QUERIES = [
    "giao thông", "giao thong", "duong giao thong nong thon", "ke hoach", "kế hoạch đầu tư",
    "sat lo", "kè sông", "phong chong thien tai", "bao cao quy", "ngan sach nha nuoc",
    "Nga Sơn", "nga son", "tho xuan", "giai phong mat bang", "chuyen doi so",
    "tiem chung", "bảo hiểm", "khieu nai to cao", "du lich", "th", "doanh ng", "muong lat",
]


def _text(rng: random.Random, words: int) -> str:
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    chosen = rng.choices(VOCABULARY, weights=weights, k=words)
    sentences = [" ".join(chosen[i:i + 14]).capitalize() + "." for i in range(0, words, 14)]
    return " ".join(sentences)


async def _populate(app: web.Application, client: aiohttp.ClientSession, base: str,
                    admin: dict[str, str], documents: int, content: Path,
                    size: int) -> dict[str, Any]:
    rng = random.Random(SEED)
    async with client.get(f"{base}/api/v1/endpoints", headers=admin) as reply:
        roster = [e["code"] for e in (await reply.json())["endpoints"]]
    districts = [code for code in roster if code not in ("UBND-TINH", OPERATOR[2])]
    conferences = max(1, documents // 10)
    ids = []
    started = time.perf_counter()
    for number in range(conferences):
        day = NOW + timedelta(days=1 + number)
        participants = ["UBND-TINH", *rng.sample(districts, rng.randint(3, 10))]
        if number % 4 == 0:
            participants.append(OPERATOR[2])  # the operator's endpoint: a quarter of them
        async with client.post(f"{base}/api/v1/conferences", headers=admin, json={
            "title": f"Giao ban {_text(rng, 5)}"[:200], "chair": "UBND-TINH",
            "participants": participants, "start": day.isoformat(),
            "end": (day + timedelta(hours=2)).isoformat(),
        }) as reply:
            body = await reply.json()
            if reply.status != 201:
                raise RuntimeError(f"booking failed: {body}")
            ids.append(body["id"])
    database = app[DATABASE]
    written = time.perf_counter()
    for number in range(documents):
        text = _text(rng, rng.randint(300, 500))
        new = store.NewDocument(
            conference_id=ids[number % len(ids)], series_id=None,
            title=_text(rng, rng.randint(4, 9)).rstrip(".")[:200],
            filename=f"tai-lieu-{number}.pdf", media_type=PDF, size=size,
            sha256="0" * 64, text=text, path=content)
        async with database.write() as session:
            await store.add(session, database.is_sqlite, new, "bench", NOW)
    return {"conferences": conferences, "documents": documents,
            "booking_s": round(written - started, 1),
            "documents_s": round(time.perf_counter() - written, 1)}


async def _timed_searches(client: aiohttp.ClientSession, base: str, headers: dict[str, str],
                          samples: int, warmup: int) -> dict[str, Any]:
    times: list[float] = []
    hits: list[int] = []
    for number in range(warmup + samples):
        query = QUERIES[number % len(QUERIES)]
        started = time.perf_counter()
        async with client.get(f"{base}/api/v1/documents", headers=headers,
                              params={"q": query, "limit": "20"}) as reply:
            body = await reply.json()
        elapsed = (time.perf_counter() - started) * 1000
        if reply.status != 200:
            raise RuntimeError(f"search {query!r} answered {reply.status}: {body}")
        if number >= warmup:
            times.append(elapsed)
            hits.append(len(body["documents"]))
    return {
        "n": len(times), "median": round(percentile(times, 50), 1),
        "p95": round(percentile(times, 95), 1), "p99": round(percentile(times, 99), 1),
        "max": round(max(times), 1), "hits_mean": round(sum(hits) / len(hits), 1),
    }


async def bench_database(url: str, label: str, args: argparse.Namespace,
                         data_dir: Path) -> dict[str, Any]:
    """Populate the database at `url`, then time the searches through HTTP."""
    settings = Settings(database_url=url, data_dir=data_dir, admin_password=ADMIN_PASSWORD,
                        scheduler_enabled=False, password_time_cost=1,
                        password_memory_kib=64, booking_horizon_days=3650)
    app = create_app(settings, clock=FixedClock(NOW))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    content = data_dir / "content.bin"
    content.write_bytes(os.urandom(CONTENT_BYTES))
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as client:
            async with client.post(f"{base}/api/v1/auth/login", json={
                    "username": "admin", "password": ADMIN_PASSWORD}) as reply:
                admin = {"Authorization": f"Bearer {(await reply.json())['token']}"}
            async with client.post(f"{base}/api/v1/users", headers=admin, json={
                    "username": OPERATOR[0], "password": OPERATOR[1], "role": "operator",
                    "endpoint": OPERATOR[2]}) as reply:
                if reply.status != 201:
                    raise RuntimeError(f"user: {await reply.text()}")
            async with client.post(f"{base}/api/v1/auth/login", json={
                    "username": OPERATOR[0], "password": OPERATOR[1]}) as reply:
                operator = {"Authorization": f"Bearer {(await reply.json())['token']}"}
            log(f"[{label}] booking conferences and storing {args.documents} documents")
            result: dict[str, Any] = {"populate": await _populate(
                app, client, base, admin, args.documents, content, CONTENT_BYTES)}
            log(f"[{label}] populated: {result['populate']}")
            for role, headers in (("admin", admin), ("operator", operator)):
                result[f"search_{role}_ms"] = await _timed_searches(
                    client, base, headers, args.samples, args.warmup)
                log(f"[{label}] {role}: {result[f'search_{role}_ms']}")
    finally:
        await runner.cleanup()
    result["meets_target"] = all(result[f"search_{role}_ms"]["p95"] < TARGET_P95_MS
                                 for role in ("admin", "operator"))
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'search as':12}{'db':>10}{'n':>6}{'median':>9}{'p95':>9}{'p99':>9}"
             f"{'max':>9}{'hits':>7}"]
    for db, result in results.items():
        if "error" in result:
            lines.append(f"{db}: FAILED: {result['error']}")
            continue
        for role in ("admin", "operator"):
            s = result[f"search_{role}_ms"]
            lines.append(f"{role:12}{db:>10}{s['n']:>6}{s['median']:>9.1f}{s['p95']:>9.1f}"
                         f"{s['p99']:>9.1f}{s['max']:>9.1f}{s['hits_mean']:>7.1f}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    wanted = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpu_model": cpu_model(),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__, "aiohttp": aiohttp.__version__,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    results = await on_each_database(
        wanted, args.postgres_url, machine,
        lambda url, db, tmp: bench_database(url, db, args, tmp),
        failures=(OSError, asyncpg.PostgresError, sqlalchemy.exc.SQLAlchemyError, RuntimeError))
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    log("")
    log(table(results))
    print(json.dumps({
        "bench": "documents", "documents": args.documents, "samples": args.samples,
        "warmup": args.warmup, "queries": len(QUERIES), "target_p95_ms": TARGET_P95_MS,
        **results, "machine": machine,
    }, ensure_ascii=False), flush=True)
    return 1 if any("error" in r for r in results.values()) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="an existing database, used only to create a scratch one")
    args = parser.parse_args(argv)
    if args.documents < 10 or args.samples < 1 or args.warmup < 0:
        parser.error("--documents at least 10, --samples at least 1, --warmup not negative")
    return args


def main() -> int:
    args = parse_args()
    # Built-in settings, whatever configs/vcbridge.toml says.
    os.environ["VCBRIDGE_CONFIG"] = os.devnull
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
