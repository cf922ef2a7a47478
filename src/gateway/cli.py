"""``stt-gateway``: serve (default), token, policy validate, audit verify."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gateway import __version__, jsonstrict
from gateway.auth.secret import resolve_audit_key, resolve_secret
from gateway.auth.tokens import ROLES, mint
from gateway.budget.policy import problems
from gateway.errors import BadKeyterms, ConfigurationError
from gateway.observability.audit_keys import derived_key, from_text
from gateway.observability.audit_verify import verify as verify_audit
from gateway.observability.logging import configure_logging, get_logger
from gateway.settings import Settings, load_settings
from gateway.signals import stop_signals
from gateway.stt.local_transcriber import LocalTranscriber
from gateway.web.links import page_link

if TYPE_CHECKING:
    from gateway.runtime.gateway import Gateway
    from gateway.web.server import GatewayRunner

log = get_logger("gateway.cli")


SERVE_HELP = """\
Run the gateway until SIGTERM or SIGINT, then drain (finish pending windows).

It is configured only by environment variables, read once at start-up; an
invalid value stops it with one line naming the variable. The main ones:

  APP_ENV                dev | staging | prod (default dev)
  GATEWAY_HOST/PORT      listen address (default 127.0.0.1:8080)
  STT_PROVIDER           auto | openai | local | simulated (auto: openai with a key,
                         else local Whisper when installed, else simulated)
  OPENAI_API_KEY         the upstream key
  LOCAL_WHISPER_MODEL    local model name or directory (default tiny.en, bundled)
  OPENAI_BASE_URL        any OpenAI-compatible server
  REDIS_URL              the shared budget ledger; unset: an embedded Redis
  BUDGET_POLICY_PATH     the budget policy (dev: the one shipped in the package)
  AUTH_JWT_SECRET        HS256 secret (dev: generated once in DATA_DIR)
  DATA_DIR               secret, embedded Redis, audit trail (default ./data)
  LOG_LEVEL, LOG_FORMAT  info | debug…, json | console

Every variable, with its default, is in the README's Configuration table.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="verb")
    sub.add_parser(
        "serve",
        help="run the gateway (default)",
        description=SERVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token = sub.add_parser("token", help="print a JWT signed with the configured secret")
    token.add_argument("--school", help="school_id claim")
    token.add_argument("--group", help="group_id claim")
    token.add_argument("--district", help="district_id claim")
    token.add_argument("--role", default="student", choices=ROLES)
    token.add_argument("--ttl", type=int, default=3600, help="seconds until expiry")
    token.add_argument("--sub", help="subject (defaults to a random id)")
    token.add_argument(
        "--url",
        action="store_true",
        help="print the link to the page that fits the role (token in the fragment)",
    )
    token.add_argument("--keyterm", action="append", default=[], help="class vocabulary")
    policy = sub.add_parser("policy", help="budget policy tools")
    policy_sub = policy.add_subparsers(dest="policy_verb", required=True)
    validate = policy_sub.add_parser("validate", help="check a policy file; list every problem")
    validate.add_argument("path", nargs="?", help="policy file (default: BUDGET_POLICY_PATH)")
    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_verb", required=True)
    verify_cmd = audit_sub.add_parser("verify", help="check the audit trail's hash chain")
    verify_cmd.add_argument("path", nargs="?", help="audit log (default: AUDIT_LOG_PATH)")
    verify_cmd.add_argument(
        "--key-file",
        action="append",
        default=[],
        help="a file holding a key that signed part of the trail (an earlier AUDIT_HMAC_KEY); "
        "repeatable. The configured key and the one derived from AUTH_JWT_SECRET are always tried",
    )
    return parser


def _policy_validate(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else settings.budget_policy_path
    try:
        data = jsonstrict.loads(path.read_text())
    except FileNotFoundError:
        print(f"{path}: file not found", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"{path}: not readable JSON: {exc}", file=sys.stderr)
        return 1
    found = problems(data)
    for problem in found:
        print(f"{path}: {problem}")
    if found:
        print(f"{len(found)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{path}: valid")
    return 0


def _audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else settings.audit_log_path
    keys = [resolve_audit_key(settings)]
    with contextlib.suppress(ConfigurationError):
        keys.append(derived_key(resolve_secret(settings)))
    for name in args.key_file:
        try:
            keys.append(from_text(Path(name).read_text()))
        except OSError as exc:
            print(f"stt-gateway audit verify: {name}: {exc.strerror}", file=sys.stderr)
            return 2
    result = verify_audit(path, keys)
    for note in result.notes:
        print(f"{path}: note: {note}")
    if result.ok:
        print(f"{path}: {result.records} records, chain intact")
        return 0
    for problem in result.problems:
        print(f"{path}: {problem}")
    print(f"{path}: BROKEN after {result.records} good records ({len(result.problems)} problems)")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
        if args.verb == "token":
            return _token(settings, args)
        if args.verb == "policy":
            return _policy_validate(settings, args)
        if args.verb == "audit":
            return _audit_verify(settings, args)
        return _serve(settings)
    except ConfigurationError as exc:
        print(f"stt-gateway: {exc}", file=sys.stderr)
        return 2


def _token(settings: Settings, args: argparse.Namespace) -> int:
    if args.role != "platform_admin" and not args.school:
        print("stt-gateway token: --school is required for this role", file=sys.stderr)
        return 2
    if args.role == "student" and args.group is None:
        print(
            "stt-gateway token: --group is required for a student token (a stream is a group's)",
            file=sys.stderr,
        )
        return 2
    if args.ttl <= 0:
        print("stt-gateway token: --ttl must be positive", file=sys.stderr)
        return 2
    try:
        token = mint(
            resolve_secret(settings),
            school_id=args.school,
            group_id=args.group,
            role=args.role,
            ttl_seconds=args.ttl,
            district_id=args.district,
            sub=args.sub,
            keyterms=args.keyterm,
            max_ttl_seconds=settings.TOKEN_MAX_TTL_SECONDS,
        )
    except (BadKeyterms, ValueError) as exc:
        print(f"stt-gateway token: {exc}", file=sys.stderr)
        return 2
    if args.url:
        print(page_link(settings.public_base_url, token, role=args.role))
    else:
        print(token)
    return 0


#: How long past SHUTDOWN_GRACE_SECONDS the process may take to exit.
EXIT_MARGIN_SECONDS = 1.0


def _serve(settings: Settings) -> int:
    stopping = asyncio.run(serve(settings))
    if stopping is not None:
        local, exit_by = stopping
        if not local.wait_idle(exit_by - time.monotonic()):
            # A native decode cannot be interrupted and Python would join its thread at
            # exit: its window was already dropped (SHUTDOWN), so leave without it.
            log.warning("gateway.exit_with_decode_running")
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    return 0


async def serve(settings: Settings) -> tuple[LocalTranscriber, float] | None:
    """Serve until stopped; with a local model, it and the time by which the process must
    have exited (the stop signal + ``SHUTDOWN_GRACE_SECONDS`` + a margin)."""
    with stop_signals() as stop:
        return await _serve_until(settings, stop)


def _listening(runner: GatewayRunner, gateway: Gateway, settings: Settings, *, frozen: int) -> None:
    """Say where the gateway listens, with which Whisper."""
    from gateway.runtime.upstream import announce

    announce(settings, gateway.upstream.url)
    for address in runner.addresses:
        host, port = address[0], address[1]
        log.info(
            "gateway.listening",
            url=f"http://{host}:{port}",
            listen=f"ws://{host}:{port}/api/v1/listen",
            provider=gateway.provider,
            model=settings.upstream_model_label,
            simulated=gateway.simulated,
            heap_frozen_objects=frozen,
        )


async def _serve_until(
    settings: Settings, stop: asyncio.Event
) -> tuple[LocalTranscriber, float] | None:
    """Run until SIGTERM/SIGINT, then drain: not ready, no new sessions, finish, close."""
    from gateway.runtime.heap import freeze_startup
    from gateway.web.app import create_app
    from gateway.web.keys import GATEWAY
    from gateway.web.server import GatewayRunner

    app = create_app(settings)
    runner = GatewayRunner(app, settings, shutdown_timeout=settings.SHUTDOWN_GRACE_SECONDS + 15)
    try:
        await runner.setup()
    except BaseException:
        with contextlib.suppress(Exception):
            await app.cleanup()  # whatever started (the embedded Redis…) stops again
        raise
    site = web.TCPSite(runner, settings.GATEWAY_HOST, settings.GATEWAY_PORT)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()  # stops the embedded Redis and releases DATA_DIR
        raise ConfigurationError(
            f"GATEWAY_PORT {settings.GATEWAY_PORT} on GATEWAY_HOST {settings.GATEWAY_HOST} "
            f"cannot be used: {exc.strerror or exc}"
        ) from None
    gateway = app[GATEWAY]
    _listening(runner, gateway, settings, frozen=freeze_startup())
    if settings.APP_ENV == "dev":
        log.info(
            "gateway.try_it",
            command=".venv/bin/stt-gateway token --school s-1 --group g-1",
            message="mint a stream token with this command and connect to the "
            "listen URL (see README: Streaming from Python)",
        )
    if gateway.simulated:
        log.warning(
            "gateway.simulated_whisper",
            message="SIMULATED Whisper in use: set OPENAI_API_KEY for real transcripts",
        )
    await stop.wait()
    exit_by = time.monotonic() + settings.SHUTDOWN_GRACE_SECONDS + EXIT_MARGIN_SECONDS
    log.info("gateway.draining", sessions=len(gateway.registry))
    local = gateway.local
    await gateway.registry.drain(settings.SHUTDOWN_GRACE_SECONDS)
    await runner.cleanup()
    log.info("gateway.stopped")
    return None if local is None else (local, exit_by)


if __name__ == "__main__":
    sys.exit(main())
