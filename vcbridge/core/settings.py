"""Service settings: `configs/vcbridge.toml` (or the file named by
`VCBRIDGE_CONFIG`), overridden by `VCBRIDGE_*` environment variables.

Every setting is validated at start; a bad value stops the service with a
message that names the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, IPvAnyNetwork, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vcbridge.core.auth.passwords import Passwords
from vcbridge.core.http.origin import normalise_origin

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "vcbridge.toml"
DEFAULT_ROSTER = PROJECT_ROOT / "configs" / "endpoints.yaml"


Role = Literal["api", "scheduler", "bridge"]
ALL_ROLES: tuple[Role, ...] = ("api", "scheduler", "bridge")


class SettingsError(Exception):
    """Raised when the configuration is invalid; the message names the key."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All settings of one vcbridge process (see `configs/vcbridge.toml`)."""

    model_config = SettingsConfigDict(
        env_prefix="VCBRIDGE_", extra="forbid", frozen=True, validate_default=True
    )

    data_dir: Path = Path("./var")
    database_url: str = ""
    roster_file: Path = DEFAULT_ROSTER
    timezone: str = "Asia/Ho_Chi_Minh"
    # The conference record's PDF ("biên bản"): the governing body named above the
    # chair's office in its heading, and the place in its date line.
    record_authority: str = Field(default="UBND TỈNH THANH HÓA", min_length=1, max_length=120)
    record_place: str = Field(default="Thanh Hóa", min_length=1, max_length=80)
    admin_password: str = Field(default="", repr=False)

    # Authentication
    login_token_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Failed logins for one user name from one client address before each next attempt
    # from there waits login_backoff_seconds, doubling up to login_backoff_max_seconds;
    # forgotten login_backoff_reset_seconds after the last failure, or at a success.
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_backoff_seconds: float = Field(default=1.0, gt=0, le=3600)
    login_backoff_max_seconds: float = Field(default=300.0, gt=0, le=86400)
    login_backoff_reset_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    # Failed logins from one client address (any user names) per window.
    login_address_max_failures: int = Field(default=20, ge=1, le=100_000)
    login_window_seconds: float = Field(default=300.0, gt=0, le=86400)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client;
    # empty: the client is the TCP peer and the header is ignored.
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    cookie_secure: bool = False
    # Argon2id cost of password hashes (OWASP minimum by default).
    password_time_cost: int = Field(default=2, ge=1, le=20)
    password_memory_kib: int = Field(default=19456, ge=8, le=4 * 1024 * 1024)

    # HTTP
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Origins ("https://host[:port]") whose pages may open a WebSocket or write with the
    # session cookie, besides the service's own (vcbridge/core/http/origin.py).
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The bearer token Prometheus must send to GET /metrics; empty: /metrics is open,
    # which `vcbridge serve` allows only on a loopback address.
    metrics_token: str = Field(default="", repr=False)

    # Meeting documents (documents/): the largest file accepted (larger: 413; only the
    # upload route reads a body this large, every other route keeps max_body_bytes), and
    # the wall time a worker process may take to check one and read its text (past it:
    # 422 unreadable).
    document_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    document_read_seconds: float = Field(default=30.0, gt=0, le=600)

    # Booking rules
    default_setup_minutes: int = Field(default=15, ge=0, le=240)
    max_setup_minutes: int = Field(default=240, ge=0, le=1440)
    max_duration_hours: float = Field(default=12.0, gt=0, le=72)
    booking_horizon_days: int = Field(default=730, ge=1, le=3650)
    max_occurrences: int = Field(default=260, ge=1, le=2000)
    max_concurrent_conferences: int = Field(default=4, ge=1, le=1000)
    max_participant_ports: int = Field(default=80, ge=2, le=100000)
    # Wall time a worker process may spend expanding one RRULE; past it: 422.
    recurrence_budget_seconds: float = Field(default=2.0, gt=0, le=60)

    # Lifecycle scheduler
    scheduler_enabled: bool = True
    warn_minutes: int = Field(default=5, ge=0, le=120)
    invite_timeout_seconds: float = Field(default=20, gt=0, le=600)
    redial_backoff_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [30.0, 60.0, 120.0], min_length=1
    )
    redial_dropped_seconds: float = Field(default=30, gt=0, le=3600)
    scheduler_horizon_minutes: int = Field(default=24 * 60, ge=5, le=14 * 24 * 60)
    leader_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    presence_stale_seconds: float = Field(default=60, gt=0, le=3600)

    # Roles of this process (issue 15, bridge nodes): `api` (the HTTP API and pages),
    # `scheduler` (a candidate for the scheduler leadership), `bridge` (carries rooms'
    # media: a bridge node). All three by default; other sets need PostgreSQL.
    roles: Annotated[list[Role], NoDecode] = Field(
        default_factory=lambda: list(ALL_ROLES), min_length=1)
    # A bridge node (PostgreSQL): its id in `bridge_nodes` (default host:port), the base
    # URL its sites use (default http://host:port as it listens), its capacity in site
    # ports (default max_participant_ports), how often it heartbeats, and after how long
    # without a heartbeat the scheduler leader declares it dead and moves its rooms.
    node_id: str = Field(default="", max_length=120)
    node_advertise_url: str = Field(default="", max_length=300)
    node_capacity_ports: int = Field(default=0, ge=0, le=100000)
    node_heartbeat_seconds: float = Field(default=1.0, gt=0, le=60)
    node_dead_after_seconds: float = Field(default=3.0, gt=0, le=600)
    # Start draining: take no new room (`vcbridge bridge-node --drain`; SIGUSR1 too).
    node_draining: bool = False

    # The event loop of `vcbridge serve` and `vcbridge agent`: uvloop (libuv; per packet and
    # per request about a fifth to a third cheaper here, see docs/performance.md) or
    # Python's own asyncio loop.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    # Bridge: a site that joins must offer its media within this time.
    signaling_offer_timeout_seconds: float = Field(default=30, gt=0, le=600)
    # Bridge: per signaling connection, messages at once and per second after that, and
    # media offers per minute (a client needs 2 per connection); past either the client
    # gets `rate_limited` and its socket is closed (docs/signaling.md).
    signaling_message_burst: int = Field(default=30, ge=5, le=10_000)
    signaling_message_rate: float = Field(default=5, gt=0, le=1000)
    signaling_offers_per_minute: int = Field(default=6, ge=2, le=600)
    # Bridge: connections per minute to one room by one site (or moderator); past it: 429.
    signaling_joins_per_minute: int = Field(default=20, ge=2, le=600)
    # Bridge: where conference recordings are written; None (empty): <data_dir>/recordings.
    recordings_dir: Path | None = None
    # Bridge: the Opus frame of the mixes the bridge sends (and its mixing clock). 60 ms
    # sends a third of the packets of 20 ms for 40 ms more delay (docs/performance.md);
    # sites may send any frame size.
    bridge_audio_frame_ms: int = 20
    # Bridge: the Opus frame its audio answers ask the sites to send (a=ptime/maxptime):
    # 60 ms packets are a third of the 20 ms ones to receive, for 40 ms more delay; the
    # agent follows it, browsers may. 20: nothing asked (docs/performance.md).
    bridge_site_audio_frame_ms: int = 20

    # An agent token read from the database is trusted this long by this process (agents
    # call every few seconds); revoking through this process takes effect at once, through
    # another process within this time. 0: always read the database.
    agent_token_cache_seconds: float = Field(default=30, ge=0, le=300)

    # Endpoint health (monitoring/): heartbeats, thresholds of the health model, history.
    health_heartbeat_interval_seconds: float = Field(default=5, gt=0, le=300)
    health_offline_after_seconds: float = Field(default=30, gt=0, le=3600)
    health_heartbeat_min_gap_seconds: float = Field(default=1.0, ge=0, le=60)
    health_heartbeat_max_bytes: int = Field(default=16384, ge=1024, le=1024 * 1024)
    health_clock_skew_seconds: float = Field(default=300, gt=0, le=7 * 86400)
    health_packet_loss_max: float = Field(default=0.02, gt=0, le=1)
    health_rtt_ms_max: float = Field(default=300, gt=0, le=60_000)
    health_jitter_ms_max: float = Field(default=30, gt=0, le=10_000)
    health_fps_min: float = Field(default=10, ge=0, le=240)
    health_cpu_percent_max: float = Field(default=90, gt=0, le=100)
    health_hysteresis: float = Field(default=0.2, ge=0, lt=1)
    health_clear_intervals: int = Field(default=3, ge=1, le=100)
    health_stream_grace_seconds: float = Field(default=30, ge=0, le=3600)
    health_test_call_max_age_seconds: float = Field(default=3600, gt=0, le=7 * 86400)
    health_preflight_wait_seconds: float = Field(default=20, ge=0, le=600)
    health_sweep_seconds: float = Field(default=2, gt=0, le=60)
    health_persist_seconds: float = Field(default=10, gt=0, le=600)
    health_samples_days: int = Field(default=35, ge=1, le=3650)

    # SIP room systems (bridge/sip/, docs/sip.md): Janus's HTTP API ("": no SIP gateway,
    # SIP endpoints are not dialled), the bridge's SIP identity, the outbound proxy
    # (kamailio) and whether to REGISTER with it (needed for calls into the bridge), the
    # digest secret if the registrar asks, and the helpers that take concurrent calls in.
    sip_gateway_url: str = Field(default="", max_length=300, pattern=r"^$|^https?://\S+$")
    sip_identity: str = Field(default="sip:vcbridge@127.0.0.1", max_length=300,
                              pattern=r"^sips?:[!#-;=?-~]{3,290}$")
    sip_proxy: str = Field(default="", max_length=300, pattern=r"^$|^sips?:[!#-;=?-~]{3,290}$")
    sip_register: bool = False
    sip_secret: str = Field(default="", repr=False, max_length=200)
    sip_incoming_helpers: int = Field(default=4, ge=0, le=64)
    # Calls out that start without waiting for Janus to set up a SIP stack (handles made
    # ready ahead; each ready handle holds one SIP port and thread in Janus).
    sip_ready_calls: int = Field(default=10, ge=0, le=200)
    # How long a SIP room may ring before the call counts as unanswered (408).
    sip_call_timeout_seconds: float = Field(default=30, gt=0, le=300)
    # OPTIONS pings of the SIP rooms (presence and round trip): every this many seconds
    # (0: none), each waiting this long for its answer, sent through this proxy as the
    # bridge reaches it ("": straight to each room's URI).
    sip_probe_interval_seconds: float = Field(default=15, ge=0, le=3600)
    sip_probe_timeout_seconds: float = Field(default=5, gt=0, le=60)
    sip_probe_proxy: str = Field(default="", max_length=300,
                                 pattern=r"^$|^sips?:[!#-;=?-~]{3,290}$")

    # ICE (used by the bridge and the agent): never a public default.
    ice_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ice_host_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The controller URLs `vcbridge agent` uses when no --server is given (it fails over
    # between them in order). Env: VCBRIDGE_AGENT_SERVERS=https://a.example,https://b.example
    agent_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)

    _csv = field_validator(
        "ice_servers", "ice_host_addresses", "agent_servers", "redial_backoff_seconds",
        "allowed_origins", "trusted_proxies", "roles",
        mode="before",
    )(_split_csv)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [normalise_origin(origin) for origin in value]

    @field_validator("metrics_token")
    @classmethod
    def _scrape_token(cls, value: str) -> str:
        if value and (len(value) < 16 or any(ch.isspace() for ch in value)):
            raise ValueError("must be at least 16 characters without spaces "
                             "(e.g. the output of `openssl rand -hex 32`)")
        return value

    @field_validator("bridge_site_audio_frame_ms")
    @classmethod
    def _opus_site_frame(cls, value: int) -> int:
        if value not in (20, 40, 60):
            raise ValueError("the sites' Opus frame must be 20, 40 or 60 ms")
        return value

    @field_validator("bridge_audio_frame_ms")
    @classmethod
    def _opus_mix_frame(cls, value: int) -> int:
        if value not in (20, 40, 60):
            raise ValueError("the bridge's Opus frame must be 20, 40 or 60 ms")
        return value

    @field_validator("recordings_dir", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _health_timing(self) -> Settings:
        # Another process must never see a live endpoint's heartbeat as stale in the
        # database: the row lags by at most one persist period plus one sweep.
        if (self.health_persist_seconds + self.health_sweep_seconds
                >= self.health_offline_after_seconds):
            raise ValueError("health_persist_seconds + health_sweep_seconds must be less than "
                             "health_offline_after_seconds")
        if self.health_offline_after_seconds < 2 * self.health_heartbeat_interval_seconds:
            raise ValueError("health_offline_after_seconds must be at least twice "
                             "health_heartbeat_interval_seconds")
        return self

    @model_validator(mode="after")
    def _login_backoff(self) -> Settings:
        # A backoff that outlives the memory of the failures would start over at zero.
        if self.login_backoff_max_seconds < self.login_backoff_seconds:
            raise ValueError("login_backoff_max_seconds must be at least login_backoff_seconds")
        if self.login_backoff_reset_seconds <= self.login_backoff_max_seconds:
            raise ValueError("login_backoff_reset_seconds must be more than "
                             "login_backoff_max_seconds")
        return self

    @field_validator("roles")
    @classmethod
    def _distinct_roles(cls, value: list[Role]) -> list[Role]:
        return sorted(set(value), key=ALL_ROLES.index)

    @field_validator("node_advertise_url")
    @classmethod
    def _advertised(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be the node's base URL: http://host[:port] or "
                             "https://host[/prefix]")
        return value

    @model_validator(mode="after")
    def _roles_need_postgres(self) -> Settings:
        # Several processes share rooms only through PostgreSQL: a bridge or a controller
        # alone on SQLite would serve a database nobody else sees.
        if self.is_split and not self.effective_database_url.startswith("postgresql"):
            raise ValueError(f"roles {','.join(self.roles)}: running a process with only some "
                             "roles (a controller, `vcbridge bridge-node`) needs PostgreSQL "
                             "(database_url = postgresql+asyncpg://...); on SQLite only the "
                             "all-in-one `vcbridge serve` runs")
        if self.node_dead_after_seconds <= self.node_heartbeat_seconds:
            raise ValueError("node_dead_after_seconds must be more than node_heartbeat_seconds")
        return self

    @field_validator("redial_backoff_seconds")
    @classmethod
    def _positive_waits(cls, value: list[float]) -> list[float]:
        if any(wait <= 0 for wait in value):
            raise ValueError("every wait must be positive")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'vcbridge.sqlite3').resolve()}"

    @property
    def is_split(self) -> bool:
        """Whether this process has only some of the roles (a multi-process deployment)."""
        return set(self.roles) != set(ALL_ROLES)

    @property
    def runs_nodes(self) -> bool:
        """Whether rooms are placed on bridge nodes through the database (PostgreSQL);
        on SQLite the one process holds every room, as before."""
        return self.effective_database_url.startswith("postgresql")

    @property
    def effective_recordings_dir(self) -> Path:
        """Where recordings are written: `recordings_dir`, or `<data_dir>/recordings`."""
        return self.recordings_dir or self.data_dir / "recordings"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("VCBRIDGE_CONFIG", DEFAULT_CONFIG))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def passwords_for(settings: Settings) -> Passwords:
    """The password hasher with the configured cost."""
    return Passwords(settings.password_time_cost, settings.password_memory_kib)


def load_settings(**overrides: Any) -> Settings:
    """Load and validate settings; raise `SettingsError` naming each bad key."""
    config = os.environ.get("VCBRIDGE_CONFIG")
    if config and not Path(config).exists():
        raise SettingsError(f"VCBRIDGE_CONFIG: file {config} does not exist")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '?'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
