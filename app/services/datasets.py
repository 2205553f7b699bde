"""Dataset entries, saving calls as examples, and feedback on spans (which may save the example).

Feedback auto-save: with `save_to_dataset` left out (or null), a score of exactly 1.0 on a function call
saves it to the function's dataset unless the function's configuration has `feedback.auto_save: false`.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import BadRequest, NotFound
from app.schemas.datasets import EntryCreate, EntryOut, EntryUpdate, FeedbackIn, FeedbackOut, SaveExamplesOut
from app.schemas.paging import Meta, Page, Paginated
from app.services.fewshot import Embedder, query_entries
from app.store.datasets import DatasetRepository, NewEntry
from app.store.feedback import ExampleToSave, FeedbackRepository
from app.store.functions import AUTO_SAVE_KEY, FunctionRecord, FunctionRepository
from app.store.projects import ProjectRef
from app.store.spans import SpanRepository
from app.store.tables import Span

MAX_QUERY_LIMIT = 1000


def _no_dataset(dataset_id: str) -> NotFound:
    return NotFound("dataset not found", detail=f"dataset_id: no dataset {dataset_id} in this project")


def _no_entry(entry_id: str) -> NotFound:
    return NotFound("dataset entry not found", detail=f"entry_id: no entry {entry_id} in this dataset")


@dataclass
class DatasetService:
    datasets: DatasetRepository
    functions: FunctionRepository
    spans: SpanRepository
    feedback: FeedbackRepository
    embedder: Embedder | None = None

    # --- entries ----------------------------------------------------------------------------------

    def create_entry(self, project: ProjectRef, dataset_id: str, body: EntryCreate) -> EntryOut:
        record = self.datasets.create_entry(project.id, dataset_id, body.entry())
        if record is None:
            raise _no_dataset(dataset_id)
        return EntryOut.of(record)

    def list_entries(self, project: ProjectRef, dataset_id: str, page: Page) -> Paginated[EntryOut]:
        found = self.datasets.list_entries(project.id, dataset_id, offset=page.offset, limit=page.limit)
        if found is None:
            raise _no_dataset(dataset_id)
        records, total = found
        return Paginated[EntryOut](meta=Meta(total_count=total), data=[EntryOut.of(r) for r in records])

    def get_entry(self, project: ProjectRef, dataset_id: str, entry_id: str) -> EntryOut:
        record = self.datasets.get_entry(project.id, dataset_id, entry_id)
        if record is None:
            raise _no_entry(entry_id)
        return EntryOut.of(record)

    def update_entry(self, project: ProjectRef, dataset_id: str, entry_id: str, body: EntryUpdate) -> EntryOut:
        record = self.datasets.update_entry(project.id, dataset_id, entry_id, body.patch())
        if record is None:
            raise _no_entry(entry_id)
        return EntryOut.of(record)

    def delete_entry(self, project: ProjectRef, dataset_id: str, entry_id: str) -> None:
        if not self.datasets.delete_entry(project.id, dataset_id, entry_id):
            raise _no_entry(entry_id)

    async def query(self, project: ProjectRef, dataset_id: str, query: str, limit: int) -> list[EntryOut]:
        """Entries whose input is most similar to the text `query` (the ranking few-shot uses)."""
        if not query.strip():
            raise BadRequest("must not be empty", field_name="query")
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise BadRequest(f"must be from 1 to {MAX_QUERY_LIMIT}", field_name="limit")
        found = await query_entries(self.datasets, project.id, dataset_id, query, limit, embedder=self.embedder)
        if found is None:
            raise _no_dataset(dataset_id)
        return [EntryOut.of(record) for record in found]

    # --- spans to examples --------------------------------------------------------------------------

    def _span(self, project: ProjectRef, span_id: str) -> Span:
        span = self.spans.get(project.id, span_id)
        if span is None:
            raise NotFound("span not found", detail=f"span_id: no span {span_id} in this project")
        return span

    def _saved_call(self, project: ProjectRef, span: Span) -> tuple[Span, FunctionRecord]:
        """The successful function call a span records (itself, or the call of a `generation` span),
        with its function; BadRequest naming `span_id` when there is nothing to save."""
        if span.type == "generation" and span.parent_id:
            span = self.spans.get(project.id, span.parent_id) or span
        if span.type != "call" or span.function_id is None:
            raise BadRequest("is not a function call; only calls can be saved as examples", field_name="span_id")
        if span.output is None:
            raise BadRequest("the call has no output to save (it failed)", field_name="span_id")
        function = self.functions.get(project.id, span.function_id)
        if function is None:
            raise BadRequest("the call's function has been deleted", field_name="span_id")
        return span, function

    def save_examples(self, project: ProjectRef, span_id: str) -> SaveExamplesOut:
        """Copy a call's input and output into its function's dataset (once per call)."""
        span, function = self._saved_call(project, self._span(project, span_id))
        new = NewEntry(input=span.input, output=span.output, source_span_id=span.id)
        return SaveExamplesOut.of(self.datasets.save_from_span(project.id, function.id, new))

    def submit_feedback(self, project: ProjectRef, span_id: str, body: FeedbackIn) -> FeedbackOut:
        if not 0.0 <= body.score <= 1.0:
            raise BadRequest("must be from 0.0 to 1.0", field_name="score")
        example = self._example_for_feedback(project, self._span(project, span_id), body)
        feedback, _ = self.feedback.submit(project.id, span_id, body.score, body.comment, example)
        return FeedbackOut(
            span_id=span_id, score=feedback.score, example_saved=feedback.example_saved, comment=feedback.comment
        )

    def _example_for_feedback(self, project: ProjectRef, span: Span, body: FeedbackIn) -> ExampleToSave | None:
        if body.save_to_dataset is True:  # forced: refuse (400) what cannot be saved
            call, function = self._saved_call(project, span)
        else:
            if body.save_to_dataset is False or body.score != 1.0:
                return None
            try:
                call, function = self._saved_call(project, span)
            except BadRequest:  # auto-save applies to successful calls; the feedback itself is still kept
                return None
            if (function.definition.configuration or {}).get(AUTO_SAVE_KEY, True) is False:
                return None
        entry = NewEntry(input=call.input, output=call.output, comment=body.comment, source_span_id=call.id)
        return ExampleToSave(function_id=function.id, entry=entry)
