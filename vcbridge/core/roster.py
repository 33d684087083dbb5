"""The endpoint roster: `configs/endpoints.yaml` and its idempotent sync into the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core.audit import SYSTEM, Actor, record
from vcbridge.core.db.models import Endpoint, EndpointKind

CODE_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,62}[A-Z0-9]$"
SYNCED_FIELDS = (
    "name",
    "name_en",
    "kind",
    "address",
    "contact_name",
    "contact_phone",
    "contact_email",
    "sip_uri",
    "sip_transport",
    "sip_srtp",
    "sip_proxy",
)
# A SIP URI as the bridge dials it: sip: or sips:, then printable characters with no
# space, no quote or angle bracket and no line break (it goes into a SIP request line).
SIP_URI_PATTERN = r"^sips?:[!#-;=?-~]{3,290}$"


class RosterError(Exception):
    """The roster file is unreadable or invalid."""


class SipRoom(BaseModel):
    """How the bridge reaches a SIP room system (Polycom, Cisco...): it has no agent,
    the bridge dials it through its SIP gateway (docs/sip.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(pattern=SIP_URI_PATTERN)
    transport: Literal["", "udp", "tcp", "tls"] = ""
    # "optional": offer SDES-SRTP, accept plain RTP; "mandatory": refuse plain RTP.
    srtp: Literal["", "optional", "mandatory"] = ""
    # An outbound proxy for this room only ("": the gateway's own).
    proxy: str = Field(default="", pattern=r"^$|" + SIP_URI_PATTERN)


class RosterEntry(BaseModel):
    """One endpoint as the roster file describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    name_en: str = Field(default="", max_length=200)
    kind: EndpointKind
    address: str = Field(default="", max_length=300)
    contact_name: str = Field(default="", max_length=200)
    contact_phone: str = Field(default="", max_length=50)
    contact_email: str = Field(default="", max_length=200)
    # Set for a SIP room system; None for a site with the agent.
    sip: SipRoom | None = None

    @property
    def sip_uri(self) -> str:
        return self.sip.uri if self.sip else ""

    @property
    def sip_transport(self) -> str:
        return self.sip.transport if self.sip else ""

    @property
    def sip_srtp(self) -> str:
        return self.sip.srtp if self.sip else ""

    @property
    def sip_proxy(self) -> str:
        return self.sip.proxy if self.sip else ""


def load_roster(path: Path) -> list[RosterEntry]:
    """Read and validate the roster file; codes must be unique."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RosterError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoints"), list):
        raise RosterError(f"{path}: expected a mapping with a list 'endpoints'")
    entries: list[RosterEntry] = []
    for index, item in enumerate(raw["endpoints"]):
        try:
            entries.append(RosterEntry.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RosterError(f"{path}: endpoints[{index}].{where}: {first['msg']}") from None
    codes = [e.code for e in entries]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise RosterError(f"{path}: duplicate codes {', '.join(duplicates)}")
    return entries


@dataclass
class SyncReport:
    """What a sync changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: int = 0

    def summary(self) -> str:
        """One line for the operator."""
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"retired {len(self.retired)}, unchanged {self.unchanged}"
        )


def _snapshot(endpoint: Endpoint) -> dict[str, Any]:
    return {name: str(getattr(endpoint, name)) for name in (*SYNCED_FIELDS, "active")}


async def sync_roster(
    session: AsyncSession, entries: list[RosterEntry], now: datetime, actor: Actor = SYSTEM
) -> SyncReport:
    """Make the endpoints table match `entries`: add, update, retire (never delete)."""
    report = SyncReport()
    existing = {e.code: e for e in (await session.scalars(select(Endpoint))).all()}
    wanted = {e.code for e in entries}
    for entry in entries:
        endpoint = existing.get(entry.code)
        if endpoint is None:
            endpoint = Endpoint(code=entry.code, active=True, created_at=now, updated_at=now)
            for name in SYNCED_FIELDS:
                setattr(endpoint, name, getattr(entry, name))
            session.add(endpoint)
            await session.flush()
            report.added.append(entry.code)
            await record(session, actor, "endpoint.add", "endpoint", entry.code, None,
                         _snapshot(endpoint), now)
            continue
        before = _snapshot(endpoint)
        changed = [n for n in SYNCED_FIELDS if getattr(endpoint, n) != getattr(entry, n)]
        if changed or not endpoint.active:
            for name in changed:
                setattr(endpoint, name, getattr(entry, name))
            endpoint.active, endpoint.retired_at, endpoint.updated_at = True, None, now
            report.updated.append(entry.code)
            await record(session, actor, "endpoint.update", "endpoint", entry.code, before,
                         _snapshot(endpoint), now)
        else:
            report.unchanged += 1
    for code, endpoint in existing.items():
        if code not in wanted and endpoint.active:
            before = _snapshot(endpoint)
            endpoint.active, endpoint.retired_at, endpoint.updated_at = False, now, now
            report.retired.append(code)
            await record(session, actor, "endpoint.retire", "endpoint", code, before,
                         _snapshot(endpoint), now)
    return report
