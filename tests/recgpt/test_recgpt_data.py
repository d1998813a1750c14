"""Data loading (atomic files, JSONL), validation messages, the split and the compression."""

from __future__ import annotations

import pytest

from longlore.core.errors import LongloreError
from longlore.recgpt.compress import (
    approx_tokens,
    compress_history,
    parse_compressed,
    time_bucket,
)
from longlore.recgpt.data import (
    behaviour,
    descriptor_tags,
    leave_last_out,
    load_dataset,
    write_jsonl_folder,
)


def test_movielens_100k_loads_with_kg_attributes(movielens):
    data = movielens
    assert (data.n_users, data.n_items, len(data.interactions)) == (943, 1682, 100000)
    assert "Sci-Fi" in data.genres and data.items["1"].title == "Toy Story" and data.items["1"].year == 1995
    with_kg = sum(bool(i.attributes) for i in data.items.values())
    assert 1500 < with_kg <= 1598  # 1,598 linked films; a few have no kept relation
    assert any(a.startswith("directed_by=") for a in data.items["1"].attributes)


def test_malformed_atomic_lines_name_file_line_and_field(toy_folder):
    inter = toy_folder / "toy.inter"
    lines = inter.read_text().splitlines()
    inter.write_text("\n".join(lines[:3] + ["7\t3\tfive\t880000000"] + lines[3:]) + "\n")
    with pytest.raises(LongloreError, match=r"toy\.inter:4: field 'rating': expected a number, got 'five'"):
        load_dataset(toy_folder)
    inter.write_text("\n".join(lines[:2] + ["7\t3\t4"]) + "\n")
    with pytest.raises(LongloreError, match=r"toy\.inter:3: expected 4 tab-separated fields"):
        load_dataset(toy_folder)
    inter.write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(LongloreError, match=r"toy\.inter:1: header field 'user_id' must be name:type"):
        load_dataset(toy_folder)


def test_jsonl_form_round_trips_and_validates(toy_data, tmp_path):
    write_jsonl_folder(toy_data, tmp_path / "j")
    again = load_dataset(tmp_path / "j")
    assert again.item_ids == toy_data.item_ids and again.user_ids == toy_data.user_ids
    assert [x.model_dump() for x in again.interactions] == [x.model_dump() for x in toy_data.interactions]
    path = tmp_path / "j" / "interactions.jsonl"
    path.write_text(path.read_text() + '{"user_id": "1", "item_id": "2"}\n')
    n = len(path.read_text().splitlines())
    with pytest.raises(LongloreError, match=rf"interactions\.jsonl:{n}: field 'timestamp'"):
        load_dataset(tmp_path / "j")


def test_unknown_user_and_missing_folder_are_clear(toy_data, tmp_path):
    with pytest.raises(LongloreError, match="unknown user id 'nobody'"):
        toy_data.user("nobody")
    with pytest.raises(LongloreError, match="no \\*.inter and no interactions.jsonl"):
        load_dataset(tmp_path)


def test_leave_last_out_is_time_ordered(toy_data):
    split = leave_last_out(toy_data)
    for u, seq in toy_data.sequences.items():
        times = [x.timestamp for x in seq]
        assert times == sorted(times)
        assert split.test[u] is seq[-1] and split.valid[u] is seq[-2] and split.train[u] == seq[:-2]


def test_behaviour_mapping_and_descriptors(toy_data):
    assert [behaviour(r) for r in (5, 4, 3, 2, 1)] == ["loved", "liked", "watched", None, None]
    tags = dict(descriptor_tags(toy_data.items["1"]))
    first = toy_data.items["1"].genres[0]
    assert tags[f"{first.lower()} movies"] == first and tags["1950s movies"] == first


def test_time_buckets_get_coarser_with_age():
    ref = 891_000_000.0  # 1998-03-27 UTC
    assert time_bucket(ref - 86400, ref) == "1998-03-26"
    assert time_bucket(ref - 60 * 86400, ref) == "1998-01"
    assert time_bucket(ref - 400 * 86400, ref) == "1997"


@pytest.mark.parametrize("budget", [40, 80, 160, 400])
def test_compression_is_lossless_for_kept_items_and_respects_budget(budget, movielens):
    data = movielens
    for uid in ("1", "13", "405", "655"):
        events = data.sequences[uid]
        c = compress_history(data, events, budget)
        assert c.tokens <= budget and approx_tokens(c.text) == c.tokens
        parsed = parse_compressed(c.text)
        # every kept item appears exactly once, with its own bucket and behaviour
        assert sorted(parsed) == sorted((b, beh, data.item_text(i)) for i, b, beh in c.kept)
        assert len(c.kept) + c.dropped_budget + c.dropped_filtered == len(events)
        kept_ids = {i for i, _, _ in c.kept}
        dropped = [e.timestamp for e in events if e.item_id not in kept_ids and e.rating >= 3]
        if dropped and c.kept:  # only the oldest are cut: nothing dropped lies in a newer bucket than a kept one
            reference = max(e.timestamp for e in events)
            oldest_bucket = min(b for _, b, _ in c.kept)
            assert time_bucket(max(dropped), reference)[: len(oldest_bucket)] <= oldest_bucket


def test_compression_filters_weak_behaviours_and_merges_equal_groups(toy_data):
    from longlore.recgpt.data import Interaction

    events = [
        Interaction(user_id="1", item_id="1", rating=5, timestamp=891_000_000.0),
        Interaction(user_id="1", item_id="2", rating=1, timestamp=891_000_100.0),
    ]
    c = compress_history(toy_data, events, 200)
    assert c.dropped_filtered == 1 and [k[0] for k in c.kept] == ["1"]
    assert c.text == f"1998-03-27(loved)|{toy_data.item_text('1')}"
    big = compress_history(toy_data, events, 200, minimum=1.0)  # now both kept, two groups, newest first
    assert parse_compressed(big.text)[0][2] == toy_data.item_text("2")
