"""`python -m tests.tracing.modules_at_exit FILE conveyor-args...`: runs the `conveyor` CLI and, as the
process exits, writes the names of the modules it had loaded to FILE (one a line)."""

from __future__ import annotations

import atexit
import sys
from pathlib import Path


def main() -> int:
    target = Path(sys.argv[1])
    atexit.register(lambda: target.write_text("\n".join(sorted(sys.modules))))
    from app.cli import main as conveyor

    return conveyor(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
