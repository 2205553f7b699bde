"""One router per resource. Every module here but `health` and `prometheus` (at the root) exposes
`router`, mounted under `/v2`."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter

ROOT_MODULES = ("health", "prometheus")  # mounted at the root by app/main.py


def v2_routers() -> list[APIRouter]:
    """Each resource module's router, in module-name order (routes within a module keep their order)."""
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module in ROOT_MODULES:
            continue
        router = getattr(importlib.import_module(f"{__name__}.{module}"), "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found
