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


MANUAL_HTML = """<html><head><title>Manual</title></head><body>
<div id="banner">Download the ebook</div><ul class="docnav"><li>Prev</li><li>Next</li></ul>
<h1>Manual</h1><p>Intro text.</p>
<div class="section"><h2>Ports</h2><p>The ports the service listens on:</p>
<table><tr><th>Port</th><th>Service</th></tr><tr><td>8080</td><td>web console</td></tr></table>
<pre>listen 8080
# not a heading</pre>
<ul><li>first item</li><li>second <b>bold</b> item</li></ul></div>
<footer>Copyright notice</footer></body></html>"""


def test_markdown_mode_keeps_headings_tables_and_code(tmp_path: Path) -> None:
    (tmp_path / "m.html").write_text(MANUAL_HTML)
    rec = next(parse_file(tmp_path / "m.html", markdown=True))
    text = rec["text"]
    assert rec["title"] == "Manual"
    assert "# Manual\n\nIntro text." in text and "## Ports" in text
    assert "| Port | Service |\n|---|---|\n| 8080 | web console |" in text
    assert "```\nlisten 8080\n# not a heading\n```" in text
    assert "- second bold item" in text
    assert "Download the ebook" not in text and "Prev" not in text and "Copyright" not in text

    import docx

    d = docx.Document()
    d.add_heading("Setup", level=1)
    d.add_paragraph("Before the table.")
    t = d.add_table(rows=2, cols=2)
    for r, (a, b) in enumerate([("key", "value"), ("port", "8080")]):
        t.rows[r].cells[0].text, t.rows[r].cells[1].text = a, b
    d.add_paragraph("After the table.")
    d.save(str(tmp_path / "d.docx"))
    text = next(parse_file(tmp_path / "d.docx", markdown=True))["text"]
    assert text.index("# Setup") < text.index("Before") < text.index("| key | value |") < text.index("After")


def test_pdf_pages_carry_the_outline_heading(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for title, body in [
        ("Install", "Run the installer."),
        ("Configure", "Edit the file."),
        ("", "More config."),
    ]:
        pdf.add_page()
        if title:
            pdf.start_section(title)
        pdf.multi_cell(0, 8, body)
    pdf.output(str(tmp_path / "o.pdf"))
    pages = list(parse_file(tmp_path / "o.pdf"))
    assert [p.get("heading") for p in pages] == ["Install", "Configure", "Configure"]


def test_question_answer_rows(tmp_path: Path) -> None:
    (tmp_path / "faq.jsonl").write_text('{"question": "Which port?", "answer": "8080."}\n')
    rec = next(parse_file(tmp_path / "faq.jsonl"))
    assert rec["text"] == "Q: Which port?\nA: 8080." and rec["format"] == "qa"
