from pathlib import Path

import pytest
from data_testing import read_jsonl, run_cli

from llmworks.data.parse import parse_file
from llmworks.errors import MissingExtra


def make_pdf(path: Path, pages: list[str], title: str = "Test PDF", password: str | None = None) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
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


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.core_properties.title = "Quarterly notes"
    d.add_paragraph("Revenue grew in the third quarter.")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "region", "north"
    d.save(str(path))
    return path


HTML = """<html><head><title>Fine-tuning guide</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a> | Cookie settings</nav>
<article><h1>Fine-tuning guide</h1>
<p>Fine-tuning adapts a pretrained language model to a task with a small, clean dataset of examples.</p>
<p>Low-rank adapters train a few million parameters instead of all of them, which fits on a laptop.</p>
</article><footer>Copyright 2026 Example Corp. All rights reserved. Subscribe to our newsletter.</footer>
</body></html>"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    make_pdf(root / "paper.pdf", ["First page about data.", "Second page about models."])
    make_docx(root / "notes.docx")
    (root / "sub" / "guide.html").write_text(HTML)
    (root / "sub" / "readme.md").write_text("# Project title\n\nSome *markdown* text.\n")
    (root / "plain.txt").write_text("Just plain text.\n")
    (root / "rows.jsonl").write_text('{"text": "row one", "title": "T"}\n{"q": "no text field"}\n')
    (root / ".hidden.txt").write_text("should be ignored")
    (root / "image.png").write_bytes(b"\x89PNG")
    return root


def test_each_format(corpus: Path) -> None:
    pages = list(parse_file(corpus / "paper.pdf"))
    assert [(p["page"], p["title"]) for p in pages] == [(1, "Test PDF"), (2, "Test PDF")]
    assert "Second page about models." in pages[1]["text"]
    docx = next(parse_file(corpus / "notes.docx"))
    assert (
        docx["title"] == "Quarterly notes"
        and "Revenue grew" in docx["text"]
        and "region\tnorth" in docx["text"]
    )
    html = next(parse_file(corpus / "sub" / "guide.html"))
    assert html["title"] == "Fine-tuning guide" and "Low-rank adapters" in html["text"]
    assert "Cookie settings" not in html["text"] and "newsletter" not in html["text"]
    md = next(parse_file(corpus / "sub" / "readme.md"))
    assert md["title"] == "Project title"
    rows = list(parse_file(corpus / "rows.jsonl"))
    assert rows[0]["text"] == "row one" and rows[1]["text"] == '{"q": "no text field"}'


def test_cli_parses_a_directory_and_skips_broken_files(corpus: Path, tmp_path: Path) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    make_pdf(corpus / "secret.pdf", ["classified"], password="hunter2")
    (corpus / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    out = tmp_path / "out.jsonl"
    r = run_cli("parse", corpus, "-o", out)
    assert r.exit_code == 0, r.output
    recs = read_jsonl(out)
    sources = {Path(x["source"]).name for x in recs}
    assert sources == {"paper.pdf", "notes.docx", "guide.html", "readme.md", "plain.txt", "rows.jsonl"}
    assert len(recs) == 2 + 1 + 1 + 1 + 1 + 2
    assert "3 skipped" in r.output
    assert "secret.pdf: encrypted PDF" in r.output and "latin1.txt: not UTF-8" in r.output
    assert "broken.pdf" in r.output


def test_cli_parse_nothing_parsed_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"garbage")
    r = run_cli("parse", tmp_path / "broken.pdf", "-o", tmp_path / "out.jsonl")
    assert r.exit_code == 2 and "1 skipped" in r.error
    assert not (tmp_path / "out.jsonl").exists()
    r = run_cli("parse", tmp_path / "missing.pdf", "-o", tmp_path / "out.jsonl")
    assert r.exit_code == 2 and "no such file" in r.error


def test_layout_engine_missing_names_the_extra(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "a.pdf", ["x"])
    try:
        import docling  # noqa: F401

        pytest.skip("docling is installed")
    except ImportError:
        pass
    with pytest.raises(MissingExtra, match=r"llmworks\[docling\]"):
        list(parse_file(pdf, "docling"))
    r = run_cli("parse", pdf, "-o", tmp_path / "o.jsonl", "--engine", "docling")
    assert r.exit_code == 2 and "pip install 'llmworks[docling]'" in r.error
