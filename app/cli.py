"""The `conveyor` command: serve (embedded), api, worker, migrate, keys, fake-provider, batch."""

from __future__ import annotations

import argparse
import os
import sys

from app.cli_batch import register_batch_commands
from app.config import Settings


def cmd_serve(args: argparse.Namespace) -> int:
    """API + worker + private broker over SQLite, in one command."""
    import uvicorn

    from app.embedded import EmbeddedServices, embedded_environment, load_or_create_key
    from app.logging import configure_logging
    from app.main import create_app
    from app.secrets import load_or_create_secret_key
    from app.store.db import run_migrations

    base = Settings()
    services = EmbeddedServices()
    try:
        env = embedded_environment(base, services, demo=args.demo)
        key = load_or_create_key(base.data_dir)
        configured = ",".join(filter(None, [base.api_keys, key]))
        env["CONVEYOR_API_KEYS"] = configured
        if not base.secret_key:  # custom models' API keys are stored encrypted with it
            env["CONVEYOR_SECRET_KEY"] = load_or_create_secret_key(base.data_dir)
        os.environ.update(env)
        settings = Settings()
        configure_logging(settings.log_level)
        run_migrations(settings.database_url, secret_key=settings.secret_key)
        services.start_worker(env, concurrency=args.concurrency)
        port = args.port or settings.port
        _banner(settings, services, key, port, demo=args.demo)
        uvicorn.run(create_app(settings), host=args.host or settings.host, port=port, log_config=None)
    finally:
        services.stop()
    return 0


def _banner(settings: Settings, services, key: str, port: int, *, demo: bool) -> None:  # noqa: ANN001
    url = f"http://{settings.host}:{port}"
    lines = [
        "",
        f'  Conveyor is running at {url}   (Opper SDK: server_url="{url}/v2")',
        f"  API key: {key}",
        f"  API docs: {url}/docs",
        f"  Web console: {url}/console",
        f"  Database: {settings.database_url}",
        *[f"  {note}" for note in services.notes],
    ]
    if not demo and not (settings.openai_api_key or settings.anthropic_api_key):
        lines += [
            "  No provider keys are configured (OPENAI_API_KEY / ANTHROPIC_API_KEY): real model calls will fail.",
            "  Run `conveyor serve --demo` (or `make demo`) to answer with the simulated fake provider instead.",
        ]
    print("\n".join(lines) + "\n", file=sys.stderr, flush=True)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from app.gc_tuning import tune_gc
    from app.logging import configure_logging
    from app.main import create_app
    from app.store.db import run_migrations

    settings = Settings()
    configure_logging(settings.log_level)
    if not args.no_migrate:
        run_migrations(settings.database_url, secret_key=settings.secret_key)
    app = create_app(settings)
    tune_gc()
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workers.main import run_worker

    run_worker(Settings(), concurrency=args.concurrency, migrate=not args.no_migrate, queues=args.queues)
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from app.store.db import run_migrations

    settings = Settings()
    run_migrations(settings.database_url, secret_key=settings.secret_key)
    print("database schema is up to date")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from app.store.db import Database, run_migrations
    from app.store.projects import ProjectRepository

    settings = Settings()
    run_migrations(settings.database_url, secret_key=settings.secret_key)
    db = Database(settings.database_url)
    key = ProjectRepository(db).create_key(args.project)
    db.dispose()
    print(f"created a key for project {args.project!r}; it is shown only once:", file=sys.stderr)
    print(key)
    return 0


def cmd_fake_provider(args: argparse.Namespace) -> int:
    from app.providers.fake import run_fake_provider

    run_fake_provider(args.host, args.port, rate_limit_per_second=args.rate_limit, batch_seconds=args.batch_seconds)
    return 0


def _listen_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings.model_fields
    parser.add_argument(
        "--host", default=None, help=f"interface to listen on (default: $CONVEYOR_HOST or {defaults['host'].default})"
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"port to listen on (default: $PORT or {defaults['port'].default})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run API, worker and a private broker (embedded mode)",
        description="API, a worker and a private Redis over SQLite in one process tree, with nothing configured "
        "(REDIS_URL / DATABASE_URL, when set, are used instead). Prints the URL and an API key; Ctrl-C stops all.",
    )
    _listen_arguments(serve)
    serve.add_argument("--demo", action="store_true", help="answer with the simulated fake provider (no model keys)")
    serve.add_argument(
        "--concurrency", type=int, default=100, help="worker job slots, i.e. calls in flight (default: %(default)s)"
    )
    serve.set_defaults(func=cmd_serve)

    api = sub.add_parser(
        "api",
        help="run the HTTP API only",
        description="The HTTP API alone, on REDIS_URL and DATABASE_URL; run workers beside it (`conveyor worker`).",
    )
    _listen_arguments(api)
    api.add_argument("--no-migrate", action="store_true", help="do not bring the database schema up to date first")
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run a Celery worker")
    worker.add_argument("--concurrency", type=int, default=None, help="job slots = calls in flight")
    worker.add_argument(
        "--queues",
        choices=["all", "interactive", "batch"],
        default="all",
        help="job queues to consume (webhooks always)",
    )
    worker.add_argument("--no-migrate", action="store_true")
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key (and the project if needed)")
    create.add_argument("--project", required=True)
    create.set_defaults(func=cmd_keys_create)

    fake = sub.add_parser("fake-provider", help="run the scripted fake model provider (OpenAI + Anthropic wire)")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8765)
    fake.add_argument("--rate-limit", type=float, default=None, help="requests per second before 429s")
    fake.add_argument("--batch-seconds", type=float, default=0.5, help="provider batches end this long after creation")
    fake.set_defaults(func=cmd_fake_provider)
    register_batch_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
