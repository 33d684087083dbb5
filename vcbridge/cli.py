"""The `vcbridge` command: serve, migrate, sync the roster, manage users and tokens,
run an endpoint agent."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bridge.agent.settings import AgentConfigError, AgentSettings, split_servers
from vcbridge.core.audit import Actor
from vcbridge.core.clock import SystemClock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.migrate import upgrade
from vcbridge.core.db.models import Endpoint, Role, TokenScope
from vcbridge.core.roster import RosterError, load_roster, sync_roster
from vcbridge.core.settings import Settings, SettingsError, load_settings, passwords_for
from vcbridge.core.users import UserError, create_user

CLI_ACTOR = Actor(name=f"cli:{getpass.getuser()}", role="admin")


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    overrides: dict[str, object] = dict(extra)
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    settings = load_settings(**overrides)
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _announce_database(settings: Settings) -> None:
    """Say on stderr which database this command works on, and when it starts a new one.

    A relative data_dir (the default `./var`) is relative to the directory the
    command runs from: run elsewhere, it would silently fill a new, empty database
    while the service uses another one."""
    url = make_url(settings.effective_database_url)
    print(f"database: {url.render_as_string(hide_password=True)}", file=sys.stderr)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        print(f"note: {url.database} does not exist yet: this creates a new, empty database. "
              "If the service already runs, point this command at its data: run it from the "
              "service's directory, or pass --data-dir, or set VCBRIDGE_DATA_DIR, "
              "VCBRIDGE_DATABASE_URL or VCBRIDGE_CONFIG as the service has them.",
              file=sys.stderr)


def _with_database(
    args: argparse.Namespace, work: Callable[[Database, Settings], Awaitable[int]]
) -> int:
    settings = _settings(args)
    _announce_database(settings)

    async def run() -> int:
        database = Database(settings.effective_database_url)
        try:
            return await work(database, settings)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _node_settings(args: argparse.Namespace) -> Settings:
    """The process's roles and its bridge node's identity, from the flags where given,
    else the settings, else from where it listens (node id host:port, advertised URL
    http://host:port)."""
    settings = _settings(args)
    overrides: dict[str, object] = {}
    roles = getattr(args, "roles", None)
    if roles:
        overrides["roles"] = [r.strip() for r in roles.split(",") if r.strip()]
    for flag, key in (("node_id", "node_id"), ("advertise_url", "node_advertise_url"),
                      ("capacity", "node_capacity_ports")):
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    if getattr(args, "drain", False):
        overrides["node_draining"] = True
    if not (overrides.get("node_id") or settings.node_id):
        overrides["node_id"] = f"{socket.gethostname()}:{args.port}"
    if not (overrides.get("node_advertise_url") or settings.node_advertise_url):
        host = args.host if args.host not in ("0.0.0.0", "::") else socket.getfqdn()  # noqa: S104
        overrides["node_advertise_url"] = f"http://{host}:{args.port}"
    # Loaded again with the flags on top, so everything is validated as a whole (roles
    # on SQLite, the URL's form).
    return _settings(args, **overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from monitoring.metrics.routes import check_metrics_exposure
    from vcbridge.app import create_app
    from vcbridge.core.http import server

    settings = _node_settings(args)
    check_metrics_exposure(args.host, settings.metrics_token)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # APScheduler logs every run of every job (the lifecycle tick: each second) at INFO.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    use_event_loop(settings)
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_heap)  # after every cleanup_ctx has started
    server.run(app, host=args.host, port=args.port)
    return 0


# The young generation's size for the cyclic garbage collector (Python's default: 700).
# Under a thousand endpoints' heartbeats (each holding its event stream: ~180,000 tracked
# objects) the default made a young collection ten times a second, an older one every
# second and a full one every ~10 s: about 2 % of a core on their own, a fifth of the
# heartbeats' cost (measured with gc.callbacks, bench/monitoring.py). Most objects die by
# their reference count before any collection; the cycles left wait a little longer
# (under that load a full collection every several minutes instead of every ~10 s).
GC_YOUNG_THRESHOLD = 10_000


async def _freeze_startup_heap(app: web.Application) -> None:
    """What is alive once the service has started (modules, mappers, caches) stays until
    exit: `gc.freeze()` keeps every full collection from scanning it again, on the
    event loop's thread. Then the collector runs less often (`GC_YOUNG_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def use_event_loop(settings: Settings) -> None:
    """Run on uvloop (libuv) unless the settings ask for Python's own event loop."""
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.install()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    async def work(database: Database, _settings: Settings) -> int:
        await upgrade(database)
        print("database is at the newest schema")
        return 0

    return _with_database(args, work)


def cmd_endpoints_sync(args: argparse.Namespace) -> int:
    async def work(database: Database, settings: Settings) -> int:
        entries = load_roster(Path(args.file) if args.file else settings.roster_file)
        await upgrade(database)
        async with database.write() as session:
            report = await sync_roster(session, entries, SystemClock().now(), CLI_ACTOR)
        print(f"roster synced: {report.summary()}")
        for label, codes in (("added", report.added), ("updated", report.updated),
                             ("retired", report.retired)):
            if codes:
                print(f"  {label}: {', '.join(codes)}")
        return 0

    return _with_database(args, work)


def cmd_endpoints_token(args: argparse.Namespace) -> int:
    from vcbridge.core.api.endpoints_routes import issue_endpoint_token

    async def work(database: Database, _settings: Settings) -> int:
        await upgrade(database)
        async with database.write() as session:
            endpoint = await session.scalar(select(Endpoint).where(Endpoint.code == args.code))
            if endpoint is None or not endpoint.active:
                print(f"error: no active endpoint {args.code!r}", file=sys.stderr)
                return 2
            secret, _token = await issue_endpoint_token(
                session, endpoint, TokenScope(args.scope), args.label, CLI_ACTOR,
                SystemClock().now(),
            )
        print(secret)
        return 0

    return _with_database(args, work)


NEW_PASSWORD_ENV = "VCBRIDGE_NEW_PASSWORD"  # noqa: S105 - a variable name, not a secret


def _new_password() -> str | None:
    """The new account's password: from VCBRIDGE_NEW_PASSWORD, or asked on the terminal."""
    if password := os.environ.get(NEW_PASSWORD_ENV):
        return password
    if not sys.stdin.isatty():
        print(f"error: no terminal to ask for the password: set {NEW_PASSWORD_ENV}",
              file=sys.stderr)
        return None
    try:
        return getpass.getpass("Mật khẩu / Password: ")
    except (EOFError, KeyboardInterrupt):
        print("\nerror: no password given", file=sys.stderr)
        return None


def cmd_users_create(args: argparse.Namespace) -> int:
    password = _new_password()
    if password is None:
        return 2

    async def work(database: Database, settings: Settings) -> int:
        await upgrade(database)
        try:
            async with database.write() as session:
                user = await create_user(
                    session, username=args.username, password=password, role=Role(args.role),
                    endpoint_code=args.endpoint, full_name=args.full_name or "",
                    actor=CLI_ACTOR, now=SystemClock().now(),
                    passwords=passwords_for(settings),
                )
                print(f"created user {user.username} ({user.role.value})")
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0

    return _with_database(args, work)


AGENT_TOKEN_ENV = "VCBRIDGE_AGENT_TOKEN"  # noqa: S105 - a variable name, not a secret


def agent_settings(args: argparse.Namespace, token: str, settings: Settings) -> AgentSettings:
    """The agent's own settings from its flags and the service's configuration: the same
    configuration file and `VCBRIDGE_*` variables (ICE servers, host addresses)."""
    servers = split_servers(args.server or settings.agent_servers)
    if not servers:
        raise AgentConfigError("give the controller's URL with --server (repeated or a comma "
                               "list for several) or VCBRIDGE_AGENT_SERVERS")
    return AgentSettings(
        server=servers[0], servers=servers, endpoint=args.endpoint, token=token,
        media=args.media,
        audio_device=args.audio_device, ice_servers=settings.ice_servers,
        ice_host_addresses=settings.ice_host_addresses, summary_seconds=args.stats_interval,
    )


def cmd_agent(args: argparse.Namespace) -> int:
    """Run the unattended endpoint agent until SIGINT or SIGTERM."""
    import signal

    from bridge.agent.device_probe import is_device_path
    from bridge.agent.endpoint_agent import EndpointAgent
    token = args.token or os.environ.get(AGENT_TOKEN_ENV, "")
    if not token:
        print(f"error: give the agent token in {AGENT_TOKEN_ENV} (or --token)", file=sys.stderr)
        return 2
    media = args.media
    if media != "testsrc" and not is_device_path(media) and not Path(media).is_file():
        print(f"error: --media {media}: no such file (use testsrc, a device such as "
              "/dev/video0, or a media file)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # aiortc and aioice log every ICE check: too much for a site's IT staff.
        for noisy in ("aiortc", "aioice"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    try:
        agent = EndpointAgent(agent_settings(args, token, settings))
    except AgentConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    use_event_loop(settings)

    async def run() -> None:
        main = asyncio.current_task()
        assert main is not None
        # SIGTERM (systemd, docker stop) leaves the conferences cleanly, like Ctrl-C.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        await agent.run()

    try:
        asyncio.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    except AgentConfigError as exc:
        logging.getLogger("bridge.agent").error("%s", exc)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `vcbridge` command."""
    parser = argparse.ArgumentParser(prog="vcbridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", help="where the SQLite database lives (default ./var)")
        return p

    serve = with_data_dir(commands.add_parser("serve", help="run the service"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--roles", help="comma list of api, scheduler, bridge (default all "
                       "three; fewer need PostgreSQL), e.g. api,scheduler for a controller")
    serve.set_defaults(func=cmd_serve)

    node = with_data_dir(commands.add_parser(
        "bridge-node", help="run a bridge node only (PostgreSQL): carries rooms' media",
        description="A process with the bridge role only: it registers in the database, "
        "heartbeats, and serves the signaling WebSocket of the rooms placed on it (sites "
        "reaching it for another room are redirected). It takes no part in the scheduler "
        "leadership. SIGUSR1 starts draining (no new rooms)."))
    node.add_argument("--host", default="127.0.0.1")
    node.add_argument("--port", type=int, default=8080)
    node.add_argument("--node-id", help="its id in the registry (default host:port)")
    node.add_argument("--advertise-url",
                      help="the base URL sites use to reach it, e.g. https://node2.example "
                      "(default http://host:port)")
    node.add_argument("--capacity", type=int,
                      help="site ports it holds (default node_capacity_ports, else "
                      "max_participant_ports)")
    node.add_argument("--drain", action="store_true",
                      help="start draining: take no new room")
    node.set_defaults(func=cmd_serve, roles="bridge")

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    with_data_dir(db.add_parser("upgrade", help="migrate to the newest schema")).set_defaults(
        func=cmd_db_upgrade
    )

    endpoints = commands.add_parser("endpoints", help="the endpoint roster").add_subparsers(
        dest="endpoints", required=True
    )
    sync = with_data_dir(endpoints.add_parser("sync", help="load configs/endpoints.yaml"))
    sync.add_argument("--file", help="another roster file")
    sync.set_defaults(func=cmd_endpoints_sync)
    token = with_data_dir(endpoints.add_parser("token", help="issue a token for an endpoint"))
    token.add_argument("code")
    token.add_argument("--scope", choices=["agent", "calendar"], default="agent")
    token.add_argument("--label", default="")
    token.set_defaults(func=cmd_endpoints_token)

    users = commands.add_parser("users", help="user accounts").add_subparsers(
        dest="users", required=True
    )
    create = with_data_dir(users.add_parser(
        "create", help="create an account (password from VCBRIDGE_NEW_PASSWORD or a prompt)"
    ))
    create.add_argument("username")
    create.add_argument("--role", choices=[r.value for r in Role], required=True)
    create.add_argument("--endpoint", help="endpoint code (operators)")
    create.add_argument("--full-name")
    create.set_defaults(func=cmd_users_create)

    agent = commands.add_parser(
        "agent", help="run the unattended endpoint agent (joins its conferences on its own)",
        description="Join this endpoint's conferences on its own: follow the controller's "
        "event stream, join when invited, leave when the conference ends, rejoin after "
        f"drops. Give the token in {AGENT_TOKEN_ENV} rather than --token, so it does not "
        "show in `ps`. ICE servers and host addresses come from the settings "
        "(VCBRIDGE_ICE_SERVERS, VCBRIDGE_ICE_HOST_ADDRESSES).",
    )
    agent.add_argument("--server", action="append",
                       help="the controller's URL, e.g. http://10.0.0.5:8080; repeat it (or "
                       "give a comma list) for several controller processes: the agent "
                       "uses the first that answers and fails over to the next "
                       "(default: VCBRIDGE_AGENT_SERVERS)")
    agent.add_argument("--endpoint", required=True, help="this site's endpoint code")
    agent.add_argument("--token", help=f"the agent token (prefer the {AGENT_TOKEN_ENV} "
                       "environment variable: a command-line argument shows in `ps`)")
    agent.add_argument("--media", default="testsrc",
                       help="testsrc (generated tone and colour card, the default), a camera "
                       "device such as /dev/video0 (v4l2, with the ALSA microphone), or a "
                       "media file played in a loop")
    agent.add_argument("--audio-device", default="default",
                       help="ALSA microphone used with a camera device (default: default)")
    agent.add_argument("--stats-interval", type=float, default=30.0,
                       help="seconds between summary lines in the log (default 30)")
    agent.add_argument("--verbose", action="store_true", help="debug logging")
    agent.set_defaults(func=cmd_agent)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vcbridge` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SettingsError, RosterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
