"""Shared fixtures of the rag tests: a small corpus of real files, and knowledge-base directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GUIDE = """# Widget Guide

The widget is a small appliance that collects sensor readings.

## Installing

To install the widget, run `widget install` as root. The installer copies the daemon to /opt/widget.

## Ports

The widget listens on these ports:

| Port | Service |
|---|---|
| 8080 | web console |
| 9090 | metrics exporter |

## Calibration

Calibrate the humidity sensor every six months with the `widget calibrate --humidity` command.
"""

ZH = """# 网络配置

网络接口的配置文件位于 /etc/network/interfaces，修改后需要重启 networking 服务。

# 防火墙

防火墙规则由 nftables 管理，规则文件是 /etc/nftables.conf。
"""

FAQ = [
    {
        "question": "What is the warranty period of the widget?",
        "answer": "Two years from the date of purchase.",
    },
    {"question": "Can the widget run on batteries?", "answer": "Yes, on four AA batteries for about a week."},
]


def make_pdf(path: Path, pages: list[str], password: str | None = None) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    if password:
        from pypdf import PdfReader, PdfWriter

        w = PdfWriter(clone_from=PdfReader(path))
        w.encrypt(user_password=password, owner_password=password)
        w.write(path)
    return path


def write_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "guide.md").write_text(GUIDE, encoding="utf-8")
    (root / "zh.md").write_text(ZH, encoding="utf-8")
    (root / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in FAQ), encoding="utf-8")
    make_pdf(
        root / "manual.pdf",
        [
            "Chapter 1. Safety. Never open the widget while it is connected to mains power.",
            "Chapter 2. Cleaning. Wipe the sensor grille with a dry cloth once a month.",
        ],
    )
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    return tmp_path / "kbs"
