"""Near-duplicate trajectories, dropped per repository as in CWM (MinHash over the actions, Jaccard 0.5).

A trajectory is represented by its actions: each step's tool and argument texts (the raw reply when
it was a format error), as word 3-gram shingles. Per repository, a MinHashLSH index (datasketch)
proposes candidates; a trajectory is dropped when a kept one's estimated Jaccard similarity reaches
the threshold, so the first of a group is kept, in export order. The index holds one signature per
kept trajectory (num_perm 64-bit values): memory grows with what is kept, not with its size.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from datasketch import MinHash, MinHashLSH

if TYPE_CHECKING:  # annotations only: shingling loads no database code
    from forager.store.stream import EpisodeBundle

STEP_COLUMNS = ("tool", "arguments", "model_text")
SHINGLE_WORDS = 3
_WORD = re.compile(r"\S+")


def action_shingles(bundle: EpisodeBundle) -> set[bytes]:
    words: list[str] = []
    for step in bundle.steps:
        if step.tool is None:
            words += _WORD.findall(step.model_text)
            continue
        words.append(f"<{step.tool}>")
        for value in step.arguments.values():
            words += _WORD.findall(value)
    return word_shingles(words)


def word_shingles(words: list[str], size: int = SHINGLE_WORDS) -> set[bytes]:
    """Runs of `size` words (a shorter text is one shingle)."""
    if len(words) < size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


class NearDuplicates:
    """`seen(bundle)` is True when an earlier trajectory of the same repository is a near-duplicate."""

    def __init__(self, threshold: float = 0.5, num_perm: int = 128):
        self.threshold, self.num_perm = threshold, num_perm
        self.indexes: dict[str, MinHashLSH] = {}
        self.signatures: dict[str, MinHash] = {}

    def seen(self, bundle: EpisodeBundle) -> bool:
        return self.seen_shingles(bundle.repo, str(bundle.episode.id), action_shingles(bundle))

    def seen_shingles(self, group: str, key: str, shingles: set[bytes]) -> bool:
        """True when an item kept earlier in `group` is a near-duplicate of these shingles; else it is kept."""
        signature = MinHash(num_perm=self.num_perm)
        signature.update_batch(list(shingles))
        index = self.indexes.setdefault(group, MinHashLSH(threshold=self.threshold, num_perm=self.num_perm))
        # why: LSH candidates are approximate; the estimate decides, so distinct ones are never dropped by banding luck
        if any(signature.jaccard(self.signatures[kept]) >= self.threshold for kept in index.query(signature)):
            return True
        index.insert(key, signature)
        self.signatures[key] = signature
        return False
