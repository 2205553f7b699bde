"""`conveyor batch ...`: submit a JSONL file as a batch, watch it, fetch its results, cancel or retry it.

Talks to a running server over HTTP: `--url` / CONVEYOR_URL (default http://127.0.0.1:8000) and
`--key` / CONVEYOR_API_KEY. The batch id of `submit` and `retry` is the only thing on stdout, so
`ID=$(conveyor batch submit items.jsonl --function f)` works; progress and summaries go to stderr.

Exit codes: 0 done (a completed batch may have failed items: the summary says how to fetch them),
1 an error (server unreachable, bad key, unknown id), 2 refused input (invalid lines, bad arguments),
3 the batch ended cancelled or failed, 130 interrupted (the batch keeps running on the server).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the client (httpx, pydantic) is imported only when a batch command runs
    from app.batch_client import Batch, BatchClient

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_NOT_COMPLETED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SHOWN_INVALID = 20  # invalid lines printed by `submit --on-invalid skip`; `status --json` has them all
UNREACHABLE_PATIENCE = 120.0  # seconds `--wait` keeps polling through an API restart


def cmd_submit(args: argparse.Namespace) -> int:
    from app.batch_client import InvalidLines
    from app.batch_display import invalid_lines

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file", "give the path of a JSONL file, one item per line", EXIT_INVALID)
    with _client(args) as client:
        function_id = client.function_id(args.function)
        size = path.stat().st_size
        _say(f"uploading {path} ({size / 1e6:.1f} MB) for function {args.function!r}...")
        started = time.monotonic()
        try:
            submitted = client.submit(
                path,
                function_id=function_id,
                revision_id=args.revision,
                on_invalid=args.on_invalid,
                metadata=args.metadata or None,
                idempotency_key=args.idempotency_key,
            )
        except InvalidLines as refused:
            _say(f"error: the batch was refused: {refused.message}")
            _say(invalid_lines(refused.items, refused.invalid_count, limit=len(refused.items)))
            _say(f"  {refused.hint}")
            return EXIT_INVALID
        batch = submitted.batch
        again = " (already submitted with this idempotency key)" if submitted.replayed else ""
        _say(f"accepted batch {batch.id}{again}: {batch.counts.total:,} items in {time.monotonic() - started:.1f} s")
        if batch.skipped:
            _say(f"skipped {batch.skipped:,} invalid lines:")
            _say(invalid_lines(batch.invalid_items, batch.skipped, limit=SHOWN_INVALID))
        print(batch.id, flush=True)
        if not args.wait:
            _say(f"follow it with `conveyor batch status {batch.id}`")
            return EXIT_OK
        return _wait_and_summarize(client, batch, args.poll_interval)


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from app.batch_display import summary

    with _client(args) as client:
        if args.json:
            print(json.dumps(client.raw(args.batch_id), indent=2))
            return EXIT_OK
        batch = client.get(args.batch_id)
    print(summary(batch))
    return EXIT_OK


def cmd_results(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.output in (None, "-"):
            try:
                written = client.write_results(args.batch_id, sys.stdout.buffer, args.status)
                sys.stdout.flush()
            except BrokenPipeError:  # `... | head`: the reader has had enough
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return EXIT_OK
            where = "stdout"
        else:
            partial = Path(args.output + ".partial")  # a complete file or none: no half-written results
            try:
                with partial.open("wb") as sink:
                    written = client.write_results(args.batch_id, sink, args.status)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            partial.replace(args.output)
            where = args.output
    by_status = ", ".join(f"{count:,} {status}" for status, count in sorted(written.by_status.items()))
    _say(f"wrote {written.lines:,} results to {where}" + (f" ({by_status})" if by_status else ""))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from app.batch_display import summary

    with _client(args) as client:
        batch = client.cancel(args.batch_id)
    running = f": {batch.counts.running:,} running items finish first" if batch.status == "cancelling" else ""
    _say(f"batch {batch.id} is {batch.status}; its queued items will not run{running}")
    print(summary(batch))
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batch = client.retry(args.batch_id)
        _say(f"retrying the {batch.counts.total:,} failed items of {args.batch_id} as batch {batch.id}")
        print(batch.id, flush=True)
        return _wait_and_summarize(client, batch, args.poll_interval) if args.wait else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batches = client.list_batches(args.status, args.limit)
    for batch in batches:
        counts = batch.counts
        print(
            f"{batch.id}  {batch.status:<10}  {counts.done:,}/{counts.total:,} done  {counts.failed:,} failed  "
            f"{batch.created_at or ''}"
        )
    if not batches:
        _say("no batches")
    return EXIT_OK


def _wait_and_summarize(client: BatchClient, batch: Batch, interval: float) -> int:
    from app.batch_client import BatchClientError
    from app.batch_display import ProgressDisplay, summary

    display = ProgressDisplay(sys.stderr)
    display.update(batch)
    unreachable_since: float | None = None
    try:
        while not batch.ended:
            time.sleep(interval)
            try:
                batch = client.get(batch.id)
                unreachable_since = None
            except BatchClientError as error:
                if error.status_code not in (None, 502, 503, 504):
                    raise
                unreachable_since = unreachable_since or time.monotonic()  # an API restart: keep polling
                if time.monotonic() - unreachable_since > UNREACHABLE_PATIENCE:
                    display.finish()
                    error.hint = f"the batch keeps running on the server: `conveyor batch status {batch.id}`"
                    raise
                continue
            display.update(batch)
    except KeyboardInterrupt:
        display.finish()
        _say(
            f"stopped waiting; batch {batch.id} keeps running: `conveyor batch status {batch.id}`, "
            f"`conveyor batch cancel {batch.id}` stops it"
        )
        return EXIT_INTERRUPTED
    display.finish()
    _say(summary(batch))
    return EXIT_OK if batch.status == "completed" else EXIT_NOT_COMPLETED


def _client(args: argparse.Namespace) -> BatchClient:
    from app.batch_client import BatchClient

    return BatchClient(args.url, args.key or _local_key(args.url))


def _local_key(url: str) -> str:
    """The key `conveyor serve` (`make run`) keeps in its data directory, for a server on this machine
    only: a key is never sent to another host unasked."""
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return ""
    path = Path(os.environ.get("CONVEYOR_DATA_DIR", ".conveyor")) / "api_key"
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _fail(message: str, hint: str = "", code: int = EXIT_ERROR) -> int:
    _say(f"error: {message}")
    if hint:
        _say(f"  {hint}")
    return code


def _run(command: Any) -> Any:
    """Expected failures end as a message and an exit code, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        from app.batch_client import BatchClientError

        try:
            return command(args)
        except BatchClientError as error:
            return _fail(error.message, error.hint)

    return run


def _metadata_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


class _MetadataAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        pairs = dict(getattr(namespace, self.dest, None) or {})
        pairs.update(dict(values))
        setattr(namespace, self.dest, pairs)


def register_batch_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `batch submit|status|results|cancel|retry|list` to the `conveyor` parser."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url",
        default=os.environ.get("CONVEYOR_URL", "http://127.0.0.1:8000"),
        help="server root (env CONVEYOR_URL, default http://127.0.0.1:8000)",
    )
    server.add_argument("--key", default=os.environ.get("CONVEYOR_API_KEY", ""), help="API key (env CONVEYOR_API_KEY)")
    polling = argparse.ArgumentParser(add_help=False)
    polling.add_argument("--poll-interval", type=float, default=1.0, help=argparse.SUPPRESS)

    batch = subparsers.add_parser(
        "batch",
        help="submit and follow batches of calls (JSONL files)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = batch.add_subparsers(dest="batch_command", required=True)

    submit = commands.add_parser("submit", parents=[server, polling], help="submit a JSONL file as a batch")
    submit.add_argument("file", help='JSONL, one item a line: {"custom_id": "a1", "input": {...}}')
    submit.add_argument("--function", required=True, help="the function (by name) every item calls")
    submit.add_argument("--revision", help="pin a revision id of the function")
    submit.add_argument("--wait", action="store_true", help="show progress until the batch ends")
    submit.add_argument("--on-invalid", choices=["reject", "skip"], help="skip invalid lines instead of refusing")
    submit.add_argument("--metadata", nargs="+", type=_metadata_pair, action=_MetadataAction, metavar="KEY=VALUE")
    submit.add_argument("--idempotency-key", help="resubmitting with the same key returns the same batch")
    submit.set_defaults(func=_run(cmd_submit))

    status = commands.add_parser("status", parents=[server], help="counts, usage, cost and time left of a batch")
    status.add_argument("batch_id")
    status.add_argument("--json", action="store_true", help="the raw batch object")
    status.set_defaults(func=_run(cmd_status))

    results = commands.add_parser("results", parents=[server], help="download the results as JSONL")
    results.add_argument("batch_id")
    results.add_argument("-o", "--output", help="file to write (default: stdout)")
    results.add_argument(
        "--status",
        action="append",
        help="only items with this status (repeatable)",
        choices=["succeeded", "failed", "cancelled", "queued", "running"],
    )
    results.set_defaults(func=_run(cmd_results))

    cancel = commands.add_parser("cancel", parents=[server], help="stop a batch: queued items never run")
    cancel.add_argument("batch_id")
    cancel.set_defaults(func=_run(cmd_cancel))

    retry = commands.add_parser("retry", parents=[server, polling], help="run a batch's failed items as a new batch")
    retry.add_argument("batch_id")
    retry.add_argument("--wait", action="store_true", help="show progress until the new batch ends")
    retry.set_defaults(func=_run(cmd_retry))

    listing = commands.add_parser("list", parents=[server], help="the project's batches, newest first")
    listing.add_argument(
        "--status", choices=["validating", "running", "completed", "cancelling", "cancelled", "failed"]
    )
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(func=_run(cmd_list))
