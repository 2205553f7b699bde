"""Ranking dataset entries by similarity to a call's input. Pure functions: no I/O.

Lexical ranking is Okapi BM25 over the entries' inputs. Inputs are JSON values: the text of every
string, number and boolean in them is tokenised (object keys are left out: entries of one function
share the same keys, so keys only add noise). Tokens are lower-cased words, with common English
stop words dropped and a light suffix stemming so `planets` matches `planet`.
With embeddings, ranking is by cosine similarity of the vectors.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_WORD_TEXT = """a an and are as at be but by can could did do does for from had has have he her his how i if
in into is it its me my no not of on or our she so than that the their them then there these they this to was we
were what when where which who whom why will with would you your"""
_STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())


@dataclass(frozen=True)
class Ranked:
    """A candidate's position in the input list and its similarity score (higher is closer)."""

    index: int
    score: float


def _stem(word: str) -> str:
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement in (("ies", "y"), ("sses", "ss")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _scalars(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _scalars(item)
    elif isinstance(value, str):
        yield value
    elif value is not None:
        yield json.dumps(value)


def tokenize(value: Any) -> list[str]:
    """The search tokens of a JSON value (see the module docstring)."""
    tokens = []
    for text in _scalars(value):
        for word in _WORD.findall(text.lower()):
            if word not in _STOP_WORDS:
                tokens.append(_stem(word))
    return tokens


def bm25_rank(query: Any, documents: Sequence[Any], *, k1: float = 1.2, b: float = 0.75) -> list[Ranked]:
    """Every document ranked against `query`, best first; equal scores keep the documents' order."""
    docs = [Counter(tokenize(document)) for document in documents]
    if not docs:
        return []
    lengths = [sum(doc.values()) for doc in docs]
    average = (sum(lengths) / len(docs)) or 1.0
    frequency = Counter(term for doc in docs for term in doc)
    terms = set(tokenize(query))
    idf = {
        term: math.log(1 + (len(docs) - frequency[term] + 0.5) / (frequency[term] + 0.5))
        for term in terms
        if frequency[term]
    }
    ranked = []
    for index, (doc, length) in enumerate(zip(docs, lengths, strict=True)):
        score = 0.0
        for term, weight in idf.items():
            count = doc.get(term, 0)
            if count:
                score += weight * count * (k1 + 1) / (count + k1 * (1 - b + b * length / average))
        ranked.append(Ranked(index, score))
    return sorted(ranked, key=lambda r: (-r.score, r.index))


def cosine_rank(query: Sequence[float], vectors: Sequence[Sequence[float]]) -> list[Ranked]:
    """Every vector ranked by cosine similarity to `query`, best first (a zero vector scores 0)."""
    query_norm = math.sqrt(sum(x * x for x in query))
    ranked = []
    for index, vector in enumerate(vectors):
        norm = math.sqrt(sum(x * x for x in vector))
        dot = sum(x * y for x, y in zip(query, vector, strict=False))
        ranked.append(Ranked(index, dot / (query_norm * norm) if query_norm and norm else 0.0))
    return sorted(ranked, key=lambda r: (-r.score, r.index))


def text_of(value: Any) -> str:
    """The text an embedding model sees for a JSON value: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
