"""Near-duplicate detection: MinHash signatures (datasketch) and a compact LSH band index.

A document is a near-duplicate when its estimated Jaccard similarity to an earlier document, over
token 3-gram shingles, reaches the threshold. LSH finds candidates, the signatures confirm them.
The index holds ~1 KB per document (band keys in a numpy hash table, 16-bit signatures), where
datasketch's MinHashLSH keeps Python sets of byte keys per band (several KB per document), too much
for a million-record file. Signatures are computed in worker processes, in bounded batches.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import xxhash
from datasketch import MinHash

NUM_PERM = 128
SEED = 1
# Latin-script words, or single CJK characters (CJK text has no spaces to split words on).
_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+"
)


def _identity(h: int) -> int:
    return h


# Shingles are hashed here (below), so MinHash gets ints and only applies its permutations.
_PERMS = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=_identity, scheme="affine32").permutations
_MIX = np.uint64(0x9E3779B1)
_MASK = np.uint64(0xFFFFFFFF)


def tokens(text: str) -> list[str]:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _TOKEN.findall(text.lower())


def shingles(text: str, n: int = 3) -> set[bytes]:
    """Token n-grams as bytes: the sets whose Jaccard similarity near-dedupe estimates."""
    toks = tokens(text)
    if len(toks) <= n:
        return {" ".join(toks).encode()}
    return {" ".join(toks[i : i + n]).encode() for i in range(len(toks) - n + 1)}


def shingle_hashes(text: str, n: int = 3) -> list[int]:
    """32-bit hashes of the same n-grams: each token hashed once, n-grams combined with numpy
    (a polynomial hash), several times faster than hashing every joined n-gram string."""
    toks = tokens(text)
    t = np.fromiter((xxhash.xxh32_intdigest(w.encode()) for w in toks), np.uint64, len(toks))
    if len(toks) <= n:
        return [xxhash.xxh32_intdigest(" ".join(toks).encode())]
    m = len(toks) - n + 1
    h = t[:m].copy()
    for k in range(1, n):
        h = (h * _MIX + t[k : k + m]) & _MASK
    return h.tolist()


def signature(text: str, n: int = 3) -> np.ndarray:
    m = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=_identity, permutations=_PERMS, scheme="affine32")
    m.update_batch(shingle_hashes(text, n))
    return m.hashvalues.astype(np.uint32, copy=False)  # affine32 stores uint32 already


def signatures(texts: list[str], n: int = 3) -> np.ndarray:
    if not texts:
        return np.zeros((0, NUM_PERM), np.uint32)
    return np.stack([signature(t, n) for t in texts])


def bands_for(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows): the cheapest banding that makes a pair at the threshold a candidate with p >= 0.95.

    Candidates are confirmed against the signatures, so missing pairs costs more than checking extra ones.
    """
    best = None
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if 1 - (1 - threshold**r) ** b >= 0.95:
            best = (b, r)  # larger r: fewer false candidates
    return best or (num_perm, 1)


class BandTable:
    """Open-addressing hash map in two numpy arrays: band key (uint64, never 0) -> the first document
    that had it. ~24 bytes a key where a dict of Python ints takes ~100."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.keys = np.zeros(capacity, np.uint64)
        self.ids = np.zeros(capacity, np.uint32)
        self.size = 0

    def get_or_put(self, keys: list[int], doc: int) -> list[int]:
        """The documents already stored under `keys` (-1 where none); `doc` is stored under the others."""
        if (self.size + len(keys)) * 2 > len(self.keys):
            self._grow()
        table, ids, mask = self.keys, self.ids, len(self.keys) - 1
        found = []
        for key in keys:  # linear probing; a plain loop beats numpy calls for 20-odd keys
            p = key & mask
            while True:
                k = int(table[p])
                if k == key:
                    found.append(int(ids[p]))
                    break
                if k == 0:
                    table[p], ids[p] = key, doc
                    self.size += 1
                    found.append(-1)
                    break
                p = (p + 1) & mask
        return found

    def _grow(self, chunk: int = 1 << 18) -> None:
        old_keys, old_ids = self.keys, self.ids
        self.keys = np.zeros(len(old_keys) * 2, np.uint64)
        self.ids = np.zeros(len(self.keys), np.uint32)
        mask = len(self.keys) - 1
        for start in range(0, len(old_keys), chunk):  # in chunks: the temporaries stay small
            k = old_keys[start : start + chunk]
            used = np.flatnonzero(k)
            keys, ids = k[used], old_ids[start : start + chunk][used]
            pos = (keys & np.uint64(mask)).astype(np.int64)
            todo = np.arange(len(keys))
            while todo.size:
                p = pos[todo]
                free = np.flatnonzero(self.keys[p] == 0)
                _, first = np.unique(p[free], return_index=True)
                put = todo[free[first]]
                self.keys[pos[put]], self.ids[pos[put]] = keys[put], ids[put]
                placed = np.zeros(len(todo), bool)
                placed[free[first]] = True
                todo = todo[~placed]
                pos[todo] = (pos[todo] + 1) & mask


class LSHIndex:
    """Streaming near-duplicate index: `check_add` adds a document and returns an earlier near-duplicate.

    Memory per document: its band keys in a `BandTable` (~24 B each) and a 16-bit-per-hash signature
    (b-bit MinHash, Li & König 2010: truncation raises the estimate by only (1 - J) / 65536).
    """

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self.bands, self.rows = bands_for(threshold)
        self.table = BandTable()
        self._blocks: list[np.ndarray] = []
        self._block = 65536
        self.size = 0

    def _keys(self, sig: np.ndarray) -> list[int]:
        r = self.rows
        return [
            xxhash.xxh64_intdigest(sig[b * r : (b + 1) * r].tobytes(), seed=b) or 1 for b in range(self.bands)
        ]

    def check_add(self, sig: np.ndarray) -> int | None:
        """Add the document; return the id of the earliest candidate it is a near-duplicate of.

        Duplicates are indexed too: a chain a ~ b ~ c where c is not close to a is still caught."""
        doc = self.size
        cands = sorted({c for c in self.table.get_or_put(self._keys(sig), doc) if c >= 0})
        short = sig.astype(np.uint16)
        if doc % self._block == 0:
            self._blocks.append(np.empty((self._block, NUM_PERM), np.uint16))
        self._blocks[-1][doc % self._block] = short
        self.size += 1
        for c in cands:
            if float(np.mean(self._blocks[c // self._block][c % self._block] == short)) >= self.threshold:
                return c
        return None


def _work(args: tuple[list[str], int]) -> np.ndarray:
    return signatures(*args)


class SignaturePool:
    """Signatures of batches of texts, computed in worker processes (inline when workers <= 1).

    `submit` returns at once, so the caller can index one batch while the workers hash the next.
    """

    def __init__(self, workers: int | None = None, ngram: int = 3) -> None:
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.ngram = ngram
        self._pool = mp.get_context("fork").Pool(self.workers) if self.workers > 1 else None

    def submit(self, texts: list[str]) -> Callable[[], np.ndarray]:
        if self._pool is None or len(texts) < 64:
            sigs = signatures(texts, self.ngram)
            return lambda: sigs
        k = self.workers * 2
        pending = self._pool.map_async(_work, [(texts[i::k], self.ngram) for i in range(k)])

        def get() -> np.ndarray:
            out = np.empty((len(texts), NUM_PERM), np.uint32)
            for i, part in enumerate(pending.get()):
                out[i::k] = part
            return out

        return get

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.submit(texts)()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def __enter__(self) -> SignaturePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def near_duplicates(
    texts: Iterable[str],
    threshold: float = 0.8,
    workers: int | None = None,
    batch: int = 2048,
    ngram: int = 3,
) -> Iterator[int | None]:
    """For each text in order: None if kept, else the position of an earlier text it nearly duplicates
    (that text may itself be a dropped duplicate: follow the links to reach the kept one)."""
    index = LSHIndex(threshold)  # every text is indexed, so index ids are stream positions
    with SignaturePool(workers, ngram) as pool:
        for sigs in pipelined(pool, _chunks(texts, batch)):
            for sig in sigs:
                yield index.check_add(sig)


def pipelined(pool: SignaturePool, batches: Iterable[list[str]]) -> Iterator[np.ndarray]:
    """Signatures batch by batch, with the next batch already being hashed while the caller works."""
    pending = None
    for texts in batches:
        nxt = pool.submit(texts)
        if pending is not None:
            yield pending()
        pending = nxt
    if pending is not None:
        yield pending()


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    buf: list[str] = []
    for t in items:
        buf.append(t)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf
