"""Ids made in bulk are the same kind of id as `new_id` makes: random version-4 UUIDs, all distinct."""

from __future__ import annotations

import uuid

from app.store.tables import new_id, new_ids


def test_bulk_ids_are_distinct_canonical_version_4_uuids():
    ids = new_ids(5000)
    assert len(set(ids)) == 5000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical lower-case, dashed form, as new_id's
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert len(new_id()) == len(ids[0])


def test_every_random_digit_position_varies():
    # The fixed positions are the version digit (14th) and the two high bits of the variant digit (17th).
    ids = new_ids(2000)
    for position in range(36):
        seen = {text[position] for text in ids}
        if position in (8, 13, 18, 23):
            assert seen == {"-"}
        elif position == 14:
            assert seen == {"4"}
        elif position == 19:
            assert seen == set("89ab")
        else:
            assert len(seen) == 16, position


def test_zero_ids():
    assert new_ids(0) == []
