"""What exporting traces costs a call: the same stack with tracing off, and exporting over OTLP/HTTP
and over gRPC to a real receiver (in this process, so decoding the spans is not charged to
Conveyor), measured in alternating rounds of one run beside the direct-call floor.

    .venv/bin/python -m bench.tracing_overhead [--calls 300] [--concurrency 1,32] [--rounds 3]

Each traced call exports 3 spans (API request, worker job, one `chat {model}` attempt) in batches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from bench.call_overhead import Contender, direct
from bench.harness import print_table, start_bench_stack, summary_ms
from tests.tracing.receiver import OtlpGrpcReceiver, OtlpHttpReceiver


def start(label: str, env: dict[str, str]) -> Contender:
    stack = start_bench_stack(**env)
    stack.start_api()
    stack.start_worker(concurrency=64)
    return Contender(label, stack, stack.new_key())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=3, help="alternations between the stacks per concurrency")
    args = parser.parse_args()

    contenders: list[Contender] = []
    with contextlib.ExitStack() as receivers:
        http = receivers.enter_context(OtlpHttpReceiver())
        grpc = receivers.enter_context(OtlpGrpcReceiver())
        try:
            contenders.append(start("off", {}))
            contenders.append(start("otlp/http", {"OTEL_EXPORTER_OTLP_ENDPOINT": http.endpoint}))
            contenders.append(
                start(
                    "otlp/grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": grpc.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
                )
            )
            settings = contenders[0].stack.settings
            latency_rows, cpu_rows = [], []
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                per_round = max(1, args.calls // args.rounds)
                floor: list[float] = []
                for contender in contenders:
                    contender.latencies, contender.cpu, contender.calls = [], {}, 0
                for round_index in range(args.rounds):
                    floor += asyncio.run(direct(settings, per_round, concurrency))
                    shift = round_index % len(contenders)
                    for contender in contenders[shift:] + contenders[:shift]:
                        contender.measure(per_round, concurrency)
                base = summary_ms(floor)
                for stat in ("p50", "p99", "mean"):
                    row: list[object] = [concurrency, stat, f"{base[stat]:.1f}"]
                    for contender in contenders:
                        measured = summary_ms(contender.latencies)
                        row += [f"{measured[stat]:.1f}", f"{measured[stat] - base[stat]:+.1f}"]
                    latency_rows.append(row)
                cpu_rows += [contender.cpu_row(concurrency) for contender in contenders]
            header = ["concurrency", "stat", "direct ms"]
            for contender in contenders:
                header += [f"{contender.label} ms", "added ms"]
            print_table(
                f"Latency per call, tracing off and exporting ({args.calls} calls in {args.rounds} rotating rounds, "
                "fake provider at 0 ms, API + 1 worker + Redis + Postgres as separate processes)",
                header,
                latency_rows,
            )
            print_table(
                "CPU per call, ms (from /proc)",
                ["concurrency", "tracing", "api", "worker", "postgres", "redis", "total"],
                cpu_rows,
            )
        finally:
            for contender in contenders:
                contender.stack.stop()  # the processes flush what they still hold as they exit
        traced = contenders[1].calls if len(contenders) > 1 else 0  # the last concurrency's; all ran as many
        expected = 3 * traced * len(args.concurrency.split(","))
        print(f"\nspans received (3 a call: {expected}): otlp/http {len(http.spans)}, otlp/grpc {len(grpc.spans)}")


if __name__ == "__main__":
    main()
