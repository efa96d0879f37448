"""BM25 (bm25s) with one tokenizer at index and query time: stemmed English, jieba-segmented Chinese."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmworks.rag.bm25 import BM25Index, tokenize

DOCS = {
    "net-en": "The network interfaces are configured in /etc/network/interfaces.",
    "apt-en": "APT installs packages from the configured repositories.",
    "fw-zh": "防火墙规则由 nftables 管理，规则文件是 /etc/nftables.conf。",
    "net-zh": "网络接口的配置文件位于 /etc/network/interfaces，修改后需要重启服务。",
    "pkg-zh": "软件包通过 APT 从软件源安装。",
}


def index() -> BM25Index:
    return BM25Index.build(list(DOCS), list(DOCS.values()))


def test_tokenizer_stems_english_and_segments_chinese() -> None:
    assert tokenize("Configuring the Network interfaces") == ["configur", "network", "interfac"]
    assert tokenize("how do I configure it?") == ["configur"]  # stop words and question words go
    words = tokenize("如何配置网络接口")
    assert "配置" in words and "网络" in words and "接口" in words and "如何" not in words


def test_chinese_queries_find_chinese_chunks() -> None:
    idx = index()
    assert idx.search("如何配置网络接口？", 2)[0][0][0] == "net-zh"
    assert idx.search("防火墙规则在哪里", 2)[0][0][0] == "fw-zh"
    assert idx.search("怎么安装软件包", 2)[0][0][0] == "pkg-zh"
    assert idx.search("configuring network interfaces", 2)[0][0][0] == "net-en"


def test_scores_share_and_misses() -> None:
    idx = index()
    hits, share = idx.search("network interfaces", 5)
    assert 0 < share < 1 and hits[0][1] >= hits[-1][1] > 0
    assert idx.search("zebra giraffe", 5) == ([], 0.0)
    _, partly = idx.search("network interfaces zebra giraffe", 5)
    assert partly < share  # words the corpus lacks lower the share: an out-of-scope signal


def test_mask_and_round_trip(tmp_path: Path) -> None:
    idx = index()
    mask = np.array([0, 1, 1, 1, 1], dtype=np.float32)  # hide net-en
    assert [i for i, _ in idx.search("network interfaces", 5, mask)[0]] == ["net-zh"]
    idx.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.search("防火墙", 1)[0][0][0] == "fw-zh" and len(loaded) == len(DOCS)
