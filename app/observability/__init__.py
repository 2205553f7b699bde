"""What operators' tools read: OpenTelemetry traces (tracing.py is the one way in)."""
