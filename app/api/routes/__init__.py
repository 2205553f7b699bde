"""One router per resource. Every module here but `health` exposes `router`, mounted under `/v2`."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def v2_routers() -> list[APIRouter]:
    """Each resource module's router, in module-name order (routes within a module keep their order)."""
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module == "health":
            continue
        router = getattr(importlib.import_module(f"{__name__}.{module}"), "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found
