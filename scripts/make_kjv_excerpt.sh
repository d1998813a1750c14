#!/usr/bin/env bash
# Rebuild src/longlore/core/data/kjv_excerpt.txt (public domain) from Debian's bible-kjv.
#   apt-get install bible-kjv bible-kjv-text && bash scripts/make_kjv_excerpt.sh
# Narrative books (many person and place names, little verse-formula text), verse numbers
# stripped, one paragraph per chapter, capped below 1 MB.
set -euo pipefail
out=src/longlore/core/data/kjv_excerpt.txt
mkdir -p "$(dirname "$out")"
spec='Gen1:1-Gen50:26 Exo1:1-Exo40:38 Jos1:1-Jos24:33 Jdg1:1-Jdg21:25 Rut1:1-Rut4:22 1Sa1:1-1Sa31:13 2Sa1:1-2Sa24:25 1Ki1:1-1Ki22:53 Est1:1-Est10:3 Act1:1-Act28:31'
bible -l100000 $spec \
  | python3 -c '
import re, sys
chapters, current, key = [], [], None
for line in sys.stdin:
    line = line.rstrip()
    heading = re.match(r"^([1-3]?\s?[A-Z][A-Za-z ]+) (\d+)$", line)
    if heading:  # "Genesis 1": a new chapter starts
        if current:
            chapters.append(" ".join(current)); current = []
        continue
    verse = re.match(r"^\s*\d+ (.*)$", line)
    if verse:
        current.append(verse.group(1).strip())
if current:
    chapters.append(" ".join(current))
text, size = [], 0
for chapter in chapters:
    if size + len(chapter.encode()) + 2 > 990_000:
        break
    text.append(chapter); size += len(chapter.encode()) + 2
sys.stdout.write("\n\n".join(text) + "\n")
' > "$out"
wc -c "$out"
