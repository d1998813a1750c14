"""Hierarchical compression of a user's behaviour history into the ``Time(Beh)|Items`` form.

RecGPT (METHODS.md §5): keep reliable behaviours, compress each item to name + category, bucket
time coarser the older it is (day within the last month, month within the last year, then year),
group items by (time bucket, behaviour) and write ``"Time1(Beh1),Time2(Beh2)|Item1,Item2"``,
where bucket/behaviour keys sharing the same item list are merged. Groups are added newest
first until the token budget is spent, so the oldest buckets are the ones cut, and every kept
item appears exactly once with its true bucket and behaviour (lossless for the items kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from longlore.recgpt.data import Dataset, Interaction, behaviour

DAY = 86400.0


def time_bucket(timestamp: float, reference: float) -> str:
    """Day resolution within 31 days of ``reference``, month within 365 days, else year (UTC)."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    age = reference - timestamp
    if age < 31 * DAY:
        return moment.strftime("%Y-%m-%d")
    if age < 365 * DAY:
        return moment.strftime("%Y-%m")
    return moment.strftime("%Y")


@dataclass
class Compressed:
    """The rendered history plus what it holds (for tests and for freshness checks)."""

    text: str
    kept: list[tuple[str, str, str]]  # (item_id, bucket, behaviour), newest first
    dropped_filtered: int  # removed by behaviour filtering
    dropped_budget: int  # removed by the token budget (the oldest)
    tokens: int


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (~4 characters per token), used when no tokenizer is given."""
    return max(1, (len(text) + 3) // 4)


def _render(groups: list[tuple[list[tuple[str, str]], list[str]]]) -> str:
    # Each group: its (bucket, behaviour) keys and its item texts.
    return "; ".join(",".join(f"{b}({beh})" for b, beh in keys) + "|" + ",".join(items) for keys, items in groups)


def compress_history(
    data: Dataset,
    events: Sequence[Interaction],
    budget: int,
    *,
    strong: float = 4.0,
    minimum: float = 3.0,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> Compressed:
    """Compress a time-ordered list of events into at most ``budget`` tokens (newest kept first)."""
    if not events:
        return Compressed("", [], 0, 0, 0)
    reference = max(e.timestamp for e in events)
    kept_events, filtered = [], 0
    for event in events:
        beh = behaviour(event.rating, strong, minimum)
        if beh is None:
            filtered += 1
        else:
            kept_events.append((event, beh))
    # (bucket, behaviour) -> item ids, insertion order newest first.
    keyed: dict[tuple[str, str], list[str]] = {}
    for event, beh in reversed(kept_events):
        keyed.setdefault((time_bucket(event.timestamp, reference), beh), []).append(event.item_id)
    groups: list[tuple[list[tuple[str, str]], list[str]]] = []
    kept: list[tuple[str, str, str]] = []
    text, tokens = "", 0
    for key, item_ids in keyed.items():
        taken: list[str] = []
        for iid in item_ids:  # add items one at a time so a big group is cut, not skipped
            trial_items = [data.item_text(i) for i in taken + [iid]]
            trial = _merge(groups + [([key], trial_items)])
            n = count_tokens(_render(trial))
            if n > budget:
                break
            taken.append(iid)
            text, tokens = _render(trial), n
        if taken:
            groups.append(([key], [data.item_text(i) for i in taken]))
            groups = _merge(groups)
            kept += [(iid, key[0], key[1]) for iid in taken]
        if len(taken) < len(item_ids):
            break  # budget spent: everything older is dropped
    return Compressed(text, kept, filtered, len(kept_events) - len(kept), tokens)


def _merge(groups: list[tuple[list[tuple[str, str]], list[str]]]) -> list[tuple[list[tuple[str, str]], list[str]]]:
    """Merge groups with identical item lists into one ``T1(B1),T2(B2)|items`` group."""
    merged: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for keys, items in groups:
        merged.setdefault(tuple(items), []).extend(k for k in keys if k not in merged.get(tuple(items), []))
    return [(keys, list(items)) for items, keys in merged.items()]


def parse_compressed(text: str) -> list[tuple[str, str, str]]:
    """Inverse of the rendering: ``(bucket, behaviour, item_text)`` triples, for tests and audits."""
    out = []
    for group in filter(None, text.split("; ")):
        keys, _, items = group.partition("|")
        for key in keys.split("),"):
            bucket, _, beh = key.rstrip(")").partition("(")
            out += [(bucket, beh, item) for item in _split_items(items)]
    return out


def _split_items(items: str) -> list[str]:
    # Item texts contain no "," outside brackets only if titles have none; split on "," that
    # follows a closing bracket or parenthesis, which ends every rendered item.
    parts, current, depth = [], "", 0
    for ch in items:
        depth += (ch in "[(" and 1) or 0
        depth -= (ch in "])" and 1) or 0
        if ch == "," and depth == 0 and current.endswith(("]", ")")):
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + ([current] if current else [])
