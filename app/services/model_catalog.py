"""A project's model catalog: what a model name in a call means, and the checked writes behind it.

`expand` turns the model chain of a call into what the worker can run without knowing the project:
aliases become their fallback lists (the alias entry's options apply to each model), custom model
names become `custom/<id>`. Names it does not know are left for the provider validation to judge.
`load_custom` is the worker's `CustomModelLoader`: it reads a custom model by id and decrypts its key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.engine.task import ModelSpec
from app.errors import BadRequest
from app.providers.custom import CUSTOM_PREFIX, CustomModelConfig, CustomModelUnavailable, custom_model_name
from app.schemas.models import AliasCreate, AliasUpdate, CustomModelCreate, CustomModelUpdate
from app.secrets import SecretBox, SecretUnreadable, require_box, secret_box
from app.store.catalog import CatalogSnapshot
from app.store.db import Database
from app.store.models_catalog import (
    AliasChanges,
    AliasRecord,
    AliasRepository,
    CustomModelChanges,
    CustomModelRecord,
    CustomModelRepository,
    ModelNameIndex,
)

MAX_ALIAS_DEPTH = 5  # an alias may name aliases, this many levels deep
MAX_EXPANDED_MODELS = 50  # a chain longer than this after expansion is refused
_PRICE_KEYS = (("input_cost_per_token", "input_cost_per_million"), ("output_cost_per_token", "output_cost_per_million"))


ModelExpander = Callable[[tuple[ModelSpec, ...]], tuple[ModelSpec, ...]]


@dataclass(frozen=True)
class EndpointSettings:
    """What a custom model's `extra` must say: its endpoint and, optionally, its prices per token."""

    api_base: str
    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0


def parse_extra(extra: dict[str, Any]) -> EndpointSettings:
    """Raise BadRequest naming `extra.<key>` when the endpoint or a price is missing or malformed."""
    if "api_key" in extra:
        raise BadRequest(
            "send the key as the top-level `api_key` (stored encrypted, never returned), not inside extra",
            field_name="extra.api_key",
        )
    api_base = extra.get("api_base")
    if not isinstance(api_base, str) or not api_base.startswith(("http://", "https://")):
        raise BadRequest(
            "must be the http(s) base URL of an OpenAI-compatible API, e.g. http://localhost:11434/v1",
            field_name="extra.api_base",
        )
    prices = []
    for per_token, per_million in _PRICE_KEYS:
        if per_token in extra and per_million in extra:
            raise BadRequest(f"give either {per_token} or {per_million}, not both", field_name=f"extra.{per_token}")
        key = per_token if per_token in extra else per_million
        value = extra.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise BadRequest("must be a non-negative number (USD)", field_name=f"extra.{key}")
        prices.append(float(value) if key == per_token else float(value) / 1_000_000)
    return EndpointSettings(api_base.rstrip("/"), prices[0], prices[1])


class ModelCatalog:
    def __init__(self, db: Database, box: SecretBox | None) -> None:
        self.custom = CustomModelRepository(db)
        self.aliases = AliasRepository(db)
        self.names = ModelNameIndex(db)
        self._box = box

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> ModelCatalog:
        return cls(db, secret_box(settings.secret_key))

    # --- the call path --------------------------------------------------------------------------

    def expand(self, project_id: str, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        """The chain with aliases expanded and custom models renamed `custom/<id>`; BadRequest (field
        `model`) on an alias cycle, a chain too deep or too long, or another project's `custom/<id>`."""
        return _Expansion(self, project_id).run(models)

    def expander(
        self, project_id: str, names: Iterable[str] = ()
    ) -> Callable[[tuple[ModelSpec, ...]], tuple[ModelSpec, ...]]:
        """`expand` for one request: `names` (the request's top-level model names) are looked up in one
        query with the chain's first names, and lookups are shared by every entry of the chain.

        Building the expander reads nothing: an async caller builds it on its event loop and runs it
        (which reads the database) in a thread."""
        expansion = _Expansion(self, project_id)
        pending = tuple(names)

        def run(models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
            expansion._look_up((*pending, *(spec.name for spec in models)))  # one query for both
            return expansion.run(models)

        return run

    def snapshot_expander(
        self, project_id: str, snapshot: CatalogSnapshot
    ) -> Callable[[tuple[ModelSpec, ...]], tuple[ModelSpec, ...]]:
        """`expand` from a cached catalog snapshot: reads nothing, so it runs on the event loop."""

        def run(models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
            return _Expansion(self, project_id, snapshot=snapshot).run(models)

        return run

    def load_custom(self, custom_model_id: str) -> CustomModelConfig | None:
        """The worker's loader: the model's endpoint, decrypted key and prices, None if it is gone."""
        record = self.custom.load(custom_model_id)
        if record is None:
            return None
        api_key = ""
        if record.api_key_encrypted:
            if self._box is None:
                raise CustomModelUnavailable("its api_key is stored encrypted but CONVEYOR_SECRET_KEY is not set here")
            try:
                api_key = self._box.decrypt(record.api_key_encrypted)
            except SecretUnreadable as exc:
                raise CustomModelUnavailable(str(exc)) from exc
        try:
            endpoint = parse_extra(record.extra)
        except BadRequest as exc:
            raise CustomModelUnavailable(f"its stored extra is unusable: {exc.detail}") from exc
        return CustomModelConfig(
            id=record.id,
            name=record.name,
            identifier=record.identifier,
            api_base=endpoint.api_base,
            api_key=api_key,
            input_cost_per_token=endpoint.input_cost_per_token,
            output_cost_per_token=endpoint.output_cost_per_token,
        )

    # --- checked writes -------------------------------------------------------------------------

    def register_custom(self, project_id: str, body: CustomModelCreate) -> CustomModelRecord:
        extra = dict(body.extra or {})
        parse_extra(extra)
        return self.custom.create(project_id, body.name, body.identifier, extra, self._encrypt(body.api_key))

    def update_custom(self, project_id: str, model_id: str, body: CustomModelUpdate) -> CustomModelRecord:
        sent = body.model_fields_set
        if body.extra is not None:
            parse_extra(body.extra)
        changes = CustomModelChanges(
            name=body.name,
            identifier=body.identifier,
            extra=dict(body.extra) if body.extra is not None else None,
            set_api_key="api_key" in sent,
            api_key_encrypted=self._encrypt(body.api_key) if "api_key" in sent else None,
        )
        return self.custom.update(project_id, model_id, changes)

    def create_alias(self, project_id: str, body: AliasCreate) -> AliasRecord:
        fallbacks = tuple(body.fallback_models)
        self._check_alias(project_id, body.name, fallbacks)
        return self.aliases.create(project_id, body.name, fallbacks, body.description)

    def update_alias(self, project_id: str, alias_id: str, body: AliasUpdate) -> AliasRecord:
        current = self.aliases.get(project_id, alias_id)
        fallbacks = tuple(body.fallback_models) if body.fallback_models is not None else None
        self._check_alias(project_id, body.name or current.name, fallbacks or current.fallback_models, current.name)
        changes = AliasChanges(
            name=body.name,
            fallback_models=fallbacks,
            set_description="description" in body.model_fields_set,
            description=body.description,
        )
        return self.aliases.update(project_id, alias_id, changes)

    def _check_alias(self, project_id: str, name: str, fallbacks: tuple[str, ...], old_name: str | None = None) -> None:
        """Expand the alias as it would be stored, so cycles are refused now rather than at call time."""
        overlay = {name: fallbacks}
        if old_name and old_name != name:
            overlay[old_name] = ()  # renamed: the old name no longer expands
        try:
            _Expansion(self, project_id, overlay).run((ModelSpec(name),))
        except BadRequest as exc:
            raise BadRequest(exc.message, field_name="fallback_models") from None

    def _encrypt(self, api_key: str | None) -> str | None:
        if not api_key:
            return None
        return require_box(self._box, "api_key").encrypt(api_key)


class _Expansion:
    """One expansion, with the alias and custom model lookups it made (each name is queried once)."""

    def __init__(
        self,
        catalog: ModelCatalog,
        project_id: str,
        overlay: dict[str, tuple[str, ...]] | None = None,
        *,
        snapshot: CatalogSnapshot | None = None,
    ):
        self.catalog = catalog
        self.project_id = project_id
        self.aliases: dict[str, tuple[str, ...]] = {k: v for k, v in (overlay or {}).items() if v}
        self.custom_ids: dict[str, str] = {}
        self.looked_up: set[str] = set(overlay or ())
        self.snapshot = snapshot  # the whole catalog, known in advance: nothing to look up
        if snapshot is not None:
            self.aliases, self.custom_ids = snapshot.aliases, snapshot.custom_ids

    def run(self, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        self._look_up(spec.name for spec in models)
        expanded: list[ModelSpec] = []
        for spec in models:
            self._walk(spec, (), expanded)
        return tuple(expanded)

    def _walk(self, spec: ModelSpec, path: tuple[str, ...], out: list[ModelSpec]) -> None:
        name = spec.name
        if name in self.aliases:
            if name in path:
                raise BadRequest(f"alias cycle: {' -> '.join((*path, name))}", field_name="model")
            if len(path) >= MAX_ALIAS_DEPTH:
                raise BadRequest(f"aliases nest deeper than {MAX_ALIAS_DEPTH} levels at {name!r}", field_name="model")
            self._look_up(self.aliases[name])
            for fallback in self.aliases[name]:
                self._walk(ModelSpec(fallback, dict(spec.options), dict(spec.extra_headers)), (*path, name), out)
            return
        if name in self.custom_ids:
            spec = ModelSpec(custom_model_name(self.custom_ids[name]), dict(spec.options), dict(spec.extra_headers))
        elif name.startswith(f"{CUSTOM_PREFIX}/") and not self._owned(name.partition("/")[2]):
            # A custom model id given directly must be the project's own: never another project's key.
            raise BadRequest(f"unknown custom model {name!r} in this project", field_name="model")
        out.append(spec)
        if len(out) > MAX_EXPANDED_MODELS:
            raise BadRequest(f"the model chain expands to more than {MAX_EXPANDED_MODELS} models", field_name="model")

    def _owned(self, custom_model_id: str) -> bool:
        if self.snapshot is not None:
            return custom_model_id in self.snapshot.owned_custom_ids
        return bool(self.catalog.custom.owned_ids(self.project_id, [custom_model_id]))

    def _look_up(self, names: Any) -> None:
        if self.snapshot is not None:
            return
        new = sorted({n for n in names if n not in self.looked_up})
        if not new:
            return
        self.looked_up.update(new)
        matches = self.catalog.names.match(self.project_id, new)
        self.aliases.update(matches.aliases)
        self.custom_ids.update(matches.custom_ids)
