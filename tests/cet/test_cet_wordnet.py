"""WordNet retention probes: the parser and the question rules on a hand-written miniature
database (always), and the real Debian ``wordnet-base`` database where it is installed."""

from __future__ import annotations

import random

import pytest

from longlore.cet import wordnet
from longlore.core.errors import LongloreError

# wndb(5WN) lines: offset lex_filenum ss_type w_cnt(hex) word lex_id ... p_cnt pointers... | gloss
NOUNS = """  1 This software and database is being provided (license header lines start with spaces)
00000001 03 n 01 entity 0 000 | root
00000002 03 n 01 animal 0 001 @ 00000001 n 0000 | a living thing
00000003 03 n 01 dog 0 001 @ 00000004 n 0000 | a dog
00000004 03 n 02 canine 0 canid 0 001 @ 00000005 n 0000 | canines
00000005 03 n 01 carnivore 0 001 @ 00000002 n 0000 | meat eaters
00000006 03 n 01 violin 0 001 @ 00000007 n 0000 | an instrument
00000007 03 n 01 bowed_stringed_instrument 0 001 @ 00000008 n 0000 | strings
00000008 03 n 01 device 0 001 @ 00000001 n 0000 | a device
00000009 03 n 01 hammer 0 001 @ 00000010 n 0000 | a tool
00000010 03 n 01 hand_tool 0 001 @ 00000008 n 0000 | a tool
00000011 03 n 01 rose 0 001 @ 00000012 n 0000 | a flower
00000012 03 n 01 shrub 0 001 @ 00000001 n 0000 | a plant
00000013 03 n 01 rare 0 001 @ 00000012 n 0000 | too rare to ask about
"""
NOUN_INDEX = """  1 license
dog n 1 1 @ 1 1 00000003
violin n 1 1 @ 1 1 00000006
hammer n 1 1 @ 1 1 00000009
rose n 1 1 @ 1 1 00000011
rare n 1 1 @ 1 0 00000013
"""
ADJS = """  1 license
00000101 00 a 01 hot 0 001 ! 00000102 a 0101 | high temperature
00000102 00 a 02 cold 0 chilly 0 001 ! 00000101 a 0101 | low temperature
00000103 00 a 01 big 0 001 ! 00000104 a 0101 | large
00000104 00 a 01 small 0 001 ! 00000103 a 0101 | little
00000105 00 a 01 happy 0 001 ! 00000106 a 0101 | glad
00000106 00 a 01 sad 0 001 ! 00000105 a 0101 | unhappy
"""
ADJ_INDEX = """  1 license
hot a 1 1 ! 1 1 00000101
cold a 1 1 ! 1 1 00000102
big a 1 1 ! 1 1 00000103
small a 1 1 ! 1 1 00000104
happy a 1 1 ! 1 1 00000105
sad a 1 1 ! 1 1 00000106
"""
COUNTS = """dog%1:05:00:: 1 40
violin%1:06:00:: 1 9
hammer%1:06:00:: 1 12
rose%1:20:00:: 1 7
rare%1:20:00:: 1 1
dog%2:38:00:: 2 30
hot%3:00:01:: 1 30
cold%3:00:01:: 1 30
big%3:00:01:: 1 50
small%3:00:00:: 1 40
happy%3:00:00:: 1 20
sad%3:00:00:: 1 20
"""


@pytest.fixture()
def mini_wordnet(tmp_path):
    for name, text in {
        "data.noun": NOUNS,
        "index.noun": NOUN_INDEX,
        "data.adj": ADJS,
        "index.adj": ADJ_INDEX,
        "cntlist.rev": COUNTS,
    }.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_hypernym_questions_ask_the_direct_hypernym_and_never_offer_an_ancestor(mini_wordnet):
    qs = wordnet.hypernym_questions(10, random.Random(0), min_count=5, folder=mini_wordnet)
    by_word = {q.question: q for q in qs}
    assert set(by_word) == {f"What is {w} a kind of?" for w in ("dog", "violin", "hammer", "rose")}  # not 'rare'
    dog = by_word["What is dog a kind of?"]
    assert dog.gold == "canine"
    # carnivore, animal, entity (ancestors) and canid (a synonym of the gold) are never distractors
    assert not {"carnivore", "animal", "entity", "canid"} & set(dog.options)
    assert by_word["What is violin a kind of?"].gold == "bowed stringed instrument"
    assert all(len(set(q.options)) == 4 for q in qs)


def test_antonym_questions_ask_the_antonym_and_never_offer_it_as_a_distractor(mini_wordnet):
    qs = wordnet.antonym_questions(10, random.Random(0), min_count=5, folder=mini_wordnet)
    golds = {q.question: q.gold for q in qs}
    assert golds["What is the opposite of hot?"] == "cold"
    assert golds["What is the opposite of small?"] == "big"
    for q in qs:
        word = q.question.removeprefix("What is the opposite of ").rstrip("?")
        assert word not in q.options and len(set(q.options)) == 4


def test_missing_database_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGLORE_WORDNET_DIR", str(tmp_path))
    with pytest.raises(LongloreError, match="apt-get install wordnet-base"):
        wordnet.wordnet_dir()
    assert not wordnet.available()


@pytest.mark.slow
@pytest.mark.skipif(
    not wordnet.available(), reason="Debian's wordnet-base is not installed (scripts/system-packages.txt)"
)
def test_real_wordnet_probes_are_common_words_with_one_gold_answer():
    hyper = wordnet.hypernym_questions(200, random.Random(0))
    ant = wordnet.antonym_questions(200, random.Random(0))
    assert len(hyper) == 200 and len(ant) == 200
    assert all(len(set(q.options)) == 4 for q in hyper + ant)
    assert len({q.question for q in hyper}) == 200 and len({q.question for q in ant}) == 200
    for q in ant:
        assert q.question.removeprefix("What is the opposite of ").rstrip("?") not in q.options
