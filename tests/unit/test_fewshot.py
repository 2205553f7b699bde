"""Few-shot ranking: tokenisation of JSON inputs, BM25 relevance, the embedding path and its fallback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.engine.fewshot import bm25_rank, cosine_rank, text_of, tokenize
from app.services.fewshot import as_example, rank_entries
from app.store.datasets import EntryRecord

TOPICS = {
    "astronomy": [
        "How many moons does Jupiter have?",
        "What is the largest planet in the solar system?",
        "Why does Saturn have rings around the planet?",
        "How far is Mars from the Sun?",
        "What is a black hole in space?",
        "How hot is the surface of Venus, the planet?",
        "What are the phases of the Moon?",
        "How old is the Sun and the solar system?",
        "What is a comet made of in space?",
        "Which planet has the longest day?",
    ],
    "cooking": [
        "How long should I boil an egg?",
        "What temperature should I bake bread in the oven?",
        "How do I make a tomato pasta sauce?",
        "Can I freeze cooked rice?",
        "How do I caramelise onions in a pan?",
        "What is the best oil for frying chicken?",
        "How much salt goes in pasta water?",
        "How do I make pancakes without eggs?",
        "How long do I roast a chicken in the oven?",
        "What spices go into a curry sauce?",
    ],
    "finance": [
        "What is compound interest on savings?",
        "How do stocks and bonds differ for an investor?",
        "Should I pay off debt or save money first?",
        "What is an index fund investment?",
        "How does a mortgage interest rate work?",
        "What is inflation and how does it affect savings?",
        "How do I build a monthly budget for money?",
        "What is a credit score used for by a bank?",
        "How are dividends paid to stock investors?",
        "What is a retirement savings account?",
    ],
}


def entries() -> list[EntryRecord]:
    now = datetime.now(UTC)
    records = []
    for topic, questions in TOPICS.items():
        for number, question in enumerate(questions):
            records.append(
                EntryRecord(
                    id=f"{topic}-{number}",
                    dataset_id="d",
                    input={"question": question},
                    output={"topic": topic},
                    expected=None,
                    comment=None,
                    source_span_id=None,
                    created_at=now,
                )
            )
    return records


def test_tokenize_takes_values_not_keys_and_stems():
    tokens = tokenize({"question": "The Planets of our Solar-System", "tags": ["Moons", 42, True], "none": None})
    assert tokens == ["planet", "solar", "system", "moon", "42", "true"]


def test_tokenize_plain_string_and_stop_words():
    assert tokenize("What is the capital of Sweden?") == ["capital", "sweden"]


def test_bm25_prefers_the_document_sharing_rare_terms():
    docs = ["the cat sat on the mat", "a dog barked at the cat", "stock markets fell sharply"]
    ranked = bm25_rank("why did the dog chase the cat", docs)
    assert [r.index for r in ranked] == [1, 0, 2]
    assert ranked[0].score > ranked[1].score > 0
    assert ranked[2].score == 0


def test_bm25_ties_keep_input_order_and_empty_inputs_are_safe():
    assert [r.index for r in bm25_rank("nothing matches", ["a b", "c d", "e f"])] == [0, 1, 2]
    assert bm25_rank("anything", []) == []
    assert [r.score for r in bm25_rank(None, ["x", "y"])] == [0.0, 0.0]


def test_thirty_entries_the_three_picked_share_the_questions_topic():
    pool = entries()
    for question, topic in [
        ({"question": "Which planet in the solar system has the most moons?"}, "astronomy"),
        ({"question": "How long do I bake a chicken in the oven?"}, "cooking"),
        ({"question": "Is an index fund a good way to grow retirement savings?"}, "finance"),
    ]:
        chosen = asyncio.run(rank_entries(question, pool, limit=3))
        assert len(chosen) == 3
        assert {entry.output["topic"] for entry in chosen} == {topic}, [e.input for e in chosen]


def test_matches_only_drops_unrelated_entries_and_fill_keeps_order():
    pool = entries()
    matched = asyncio.run(rank_entries("comet", pool, limit=5, matches_only=True))
    assert [entry.id for entry in matched] == ["astronomy-8"]
    filled = asyncio.run(rank_entries("comet", pool, limit=3))
    assert [entry.id for entry in filled] == ["astronomy-8", "astronomy-0", "astronomy-1"]


class KeywordEmbedder:
    """Embeds a text as counts of three marker words: enough to check the cosine path."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(texts)
        return [[float(t.lower().count(w)) for w in ("planet", "oven", "savings")] for t in texts]


class BrokenEmbedder:
    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding endpoint down")


def test_embedding_path_ranks_by_cosine():
    embedder = KeywordEmbedder()
    chosen = asyncio.run(rank_entries({"question": "my savings"}, entries(), limit=2, embedder=embedder))
    assert {entry.output["topic"] for entry in chosen} == {"finance"}
    assert embedder.calls[0][0] == text_of({"question": "my savings"})
    assert len(embedder.calls[0]) == 31


def test_failing_embedder_falls_back_to_bm25():
    chosen = asyncio.run(rank_entries("comet", entries(), limit=1, embedder=BrokenEmbedder()))
    assert [entry.id for entry in chosen] == ["astronomy-8"]


def test_cosine_rank_and_zero_vectors():
    ranked = cosine_rank([1.0, 0.0], [[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    assert [(r.index, round(r.score, 3)) for r in ranked] == [(1, 1.0), (0, 0.0), (2, 0.0)]


def test_expected_wins_over_output_in_examples():
    entry = entries()[0]
    assert as_example(entry).output == {"topic": "astronomy"}
    corrected = EntryRecord(**{**entry.__dict__, "expected": {"topic": "space"}, "comment": "fixed"})
    example = as_example(corrected)
    assert (example.input, example.output, example.comment) == (entry.input, {"topic": "space"}, "fixed")
