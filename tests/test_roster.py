"""The roster file and its idempotent sync: add, update, retire, never delete."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from vcbridge.core.db.engine import Database
from vcbridge.core.db.migrate import upgrade
from vcbridge.core.db.models import AuditEvent, Endpoint, EndpointKind
from vcbridge.core.roster import RosterError, load_roster, sync_roster
from vcbridge.core.settings import DEFAULT_ROSTER

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_shipped_roster_has_the_31_endpoints_of_the_province() -> None:
    entries = load_roster(DEFAULT_ROSTER)
    assert len(entries) == 31
    kinds = [e.kind for e in entries]
    assert kinds.count(EndpointKind.PROVINCIAL) == 4
    assert kinds.count(EndpointKind.DISTRICT) == 27
    names = {e.code: e.name for e in entries}
    assert names["UBND-TINH"] == "Văn phòng UBND tỉnh"
    assert names["HUYEN-MUONG-LAT"] == "UBND huyện Mường Lát"
    assert names["TX-BIM-SON"] == "UBND Thị xã Bỉm Sơn"
    assert all(e.code.isascii() for e in entries)


def test_invalid_roster_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"endpoints": [{"code": "ok-lower", "name": "x",
                                                  "kind": "district"}]}))
    with pytest.raises(RosterError, match=r"endpoints\[0\]\.code"):
        load_roster(bad)
    dup = tmp_path / "dup.yaml"
    entry = {"code": "AB-CD", "name": "x", "kind": "district"}
    dup.write_text(yaml.safe_dump({"endpoints": [entry, entry]}))
    with pytest.raises(RosterError, match="duplicate codes AB-CD"):
        load_roster(dup)


async def test_sync_is_idempotent_and_retires_without_deleting(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    await upgrade(database)
    entries = load_roster(DEFAULT_ROSTER)
    async with database.write() as session:
        first = await sync_roster(session, entries, NOW)
    assert len(first.added) == 31
    async with database.write() as session:
        again = await sync_roster(session, entries, NOW)
    assert (again.added, again.updated, again.retired, again.unchanged) == ([], [], [], 31)

    renamed = [e.model_copy(update={"contact_phone": "0237 3852 000"})
               if e.code == "HUYEN-NGA-SON" else e for e in entries if e.code != "HUYEN-TINH-GIA"]
    async with database.write() as session:
        changed = await sync_roster(session, renamed, NOW)
    assert changed.updated == ["HUYEN-NGA-SON"] and changed.retired == ["HUYEN-TINH-GIA"]
    async with database.read() as session:
        retired = await session.scalar(select(Endpoint).where(Endpoint.code == "HUYEN-TINH-GIA"))
        assert retired is not None and not retired.active and retired.retired_at == NOW
        assert await session.scalar(select(func.count()).select_from(Endpoint)) == 31
        actions = (await session.scalars(select(AuditEvent.action))).all()
    assert actions.count("endpoint.retire") == 1 and actions.count("endpoint.update") == 1

    # Listed again: back in service.
    async with database.write() as session:
        back = await sync_roster(session, entries, NOW)
    assert back.updated == ["HUYEN-NGA-SON", "HUYEN-TINH-GIA"]
    await database.dispose()
