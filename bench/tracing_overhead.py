"""What exporting traces costs a call: the same stack with tracing off, and exporting over OTLP/HTTP
and over gRPC to a real receiver (in this process, so decoding the spans is not charged to
Conveyor), measured in alternating rounds of one run beside the direct-call floor.

    .venv/bin/python -m bench.tracing_overhead [--calls 300] [--concurrency 1,32] [--rounds 3]

Each traced call exports 3 spans (API request, worker job, one `chat {model}` attempt) in batches.
"""

from __future__ import annotations

import argparse
import contextlib

from bench.call_overhead import Contender, measure_all, print_tables, start_contender
from tests.tracing.receiver import OtlpGrpcReceiver, OtlpHttpReceiver


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
            contenders.append(start_contender("off"))
            contenders.append(start_contender("otlp/http", OTEL_EXPORTER_OTLP_ENDPOINT=http.endpoint))
            contenders.append(
                start_contender(
                    "otlp/grpc", OTEL_EXPORTER_OTLP_ENDPOINT=grpc.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"
                )
            )
            concurrencies = [int(c) for c in args.concurrency.split(",")]
            print_tables(
                f"Latency per call, tracing off and exporting ({args.calls} calls in {args.rounds} rotating rounds, "
                "fake provider at 0 ms, API + 1 worker + Redis + Postgres as separate processes)",
                contenders,
                measure_all(contenders, concurrencies, args.calls, args.rounds),
            )
        finally:
            for contender in contenders:
                contender.stack.stop()  # the processes flush what they still hold as they exit
        traced = contenders[1].calls if len(contenders) > 1 else 0  # the last concurrency's; all ran as many
        expected = 3 * traced * len(args.concurrency.split(","))
        print(f"\nspans received (3 a call: {expected}): otlp/http {len(http.spans)}, otlp/grpc {len(grpc.spans)}")


if __name__ == "__main__":
    main()
