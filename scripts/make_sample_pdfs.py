"""Write the sample corpus PDFs from plain-text sources, with no dependencies.

The project has no PDF writer installed, so this script writes PDF 1.4 by hand:
a catalog, a page tree, one content stream per page with the text drawn by
``BT /F1 11 Tf x y Td (...) Tj ET`` in the standard Helvetica Type1 fonts,
a correct cross-reference table, and an ``/Info`` dictionary with ``/Title``.

Source format (``scripts/pdf_sources/*.txt``): the first line is the title;
paragraphs are separated by blank lines; a line starting with ``# `` is a
heading. Paragraphs are re-wrapped to fit the page.

Usage::

    python scripts/make_sample_pdfs.py            # writes the committed PDFs
    python scripts/make_sample_pdfs.py SRC.txt OUT.pdf

The output is deterministic (fixed dates), so re-running it does not change
the committed files unless a source changed.
"""

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "pdf_sources"
TARGET = ROOT / "genai_assets" / "data" / "sample_corpus" / "whitepapers"

PAGE_WIDTH, PAGE_HEIGHT = 612, 792  # US Letter, in points
MARGIN = 72
BODY_SIZE, BODY_LEADING = 11, 15
HEADING_SIZE, HEADING_LEADING = 14, 22
TITLE_SIZE, TITLE_LEADING = 18, 30
WRAP_COLUMNS = 86  # about 6.5 in of 11 pt Helvetica
AUTHOR = "Corvid Systems"
FIXED_DATE = "D:20251104090000Z"


def escape_pdf_string(text: str) -> str:
    """Escape a string for a PDF literal string ``( ... )``."""
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def layout(source: str) -> tuple[str, list[list[tuple[str, int, int]]]]:
    """Split a source text into its title and pages of (font, size, y, text) lines.

    Returns:
        The title and a list of pages, each a list of ``(font, size, y, text)``.
    """
    lines = source.strip("\n").splitlines()
    title = lines[0].strip()
    blocks: list[tuple[str, str]] = [("title", title)]
    paragraph: list[str] = []
    for raw in [*lines[1:], ""]:
        line = raw.strip()
        if line.startswith("# "):
            if paragraph:
                blocks.append(("body", " ".join(paragraph)))
                paragraph = []
            blocks.append(("heading", line[2:].strip()))
        elif line:
            paragraph.append(line)
        elif paragraph:
            blocks.append(("body", " ".join(paragraph)))
            paragraph = []

    pages: list[list[tuple[str, int, int, str]]] = [[]]
    y = PAGE_HEIGHT - MARGIN
    for kind, text in blocks:
        if kind == "title":
            font, size, leading, wrapped = "F2", TITLE_SIZE, TITLE_LEADING, [text]
        elif kind == "heading":
            font, size, leading, wrapped = "F2", HEADING_SIZE, HEADING_LEADING, [text]
        else:
            font, size, leading = "F1", BODY_SIZE, BODY_LEADING
            wrapped = textwrap.wrap(text, WRAP_COLUMNS, break_long_words=False)
        if kind == "heading" and y - leading * 3 < MARGIN:
            pages.append([])  # keep a heading with the lines after it
            y = PAGE_HEIGHT - MARGIN
        for item in wrapped:
            if y < MARGIN:
                pages.append([])
                y = PAGE_HEIGHT - MARGIN
            pages[-1].append((font, size, y, item))
            y -= leading
        y -= BODY_LEADING // 2  # paragraph spacing
    return title, pages


def build_pdf(title: str, pages: list[list[tuple[str, int, int, str]]]) -> bytes:
    """Serialise laid-out pages into a PDF 1.4 file."""
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the page tree number is known
    info = add(
        (
            f"<< /Title ({escape_pdf_string(title)}) /Author ({AUTHOR}) "
            f"/Producer (genai_assets scripts/make_sample_pdfs.py) "
            f"/CreationDate ({FIXED_DATE}) >>"
        ).encode("latin-1")
    )
    font_regular = add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    font_bold = add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
    )
    page_tree = add(b"")
    page_numbers = []
    for number, page in enumerate(pages, start=1):
        commands = []
        for font, size, y, text in page:
            commands.append(
                f"BT /{font} {size} Tf {MARGIN} {y} Td ({escape_pdf_string(text)}) Tj ET"
            )
        footer = f"{title} - page {number} of {len(pages)}"
        commands.append(f"BT /F1 8 Tf {MARGIN} 40 Td ({escape_pdf_string(footer)}) Tj ET")
        stream = "\n".join(commands).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_numbers.append(
            add(
                (
                    f"<< /Type /Page /Parent {page_tree} 0 R "
                    f"/MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
                    f"/Resources << /Font << /F1 {font_regular} 0 R /F2 {font_bold} 0 R >> >> "
                    f"/Contents {content} 0 R >>"
                ).encode("latin-1")
            )
        )
    kids = " ".join(f"{n} 0 R" for n in page_numbers)
    objects[page_tree - 1] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_numbers)} >>".encode(
        "latin-1"
    )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {page_tree} 0 R >>".encode("latin-1")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_offset = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info,
        xref_offset,
    )
    return bytes(out)


def make_pdf(source: Path, target: Path) -> int:
    """Write ``target`` from the text in ``source``; return the number of pages."""
    text = source.read_text(encoding="utf-8")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as error:
        raise ValueError(f"{source}: only Latin-1 text can be drawn with Helvetica") from error
    title, pages = layout(text)
    target.write_bytes(build_pdf(title, pages))
    return len(pages)


def main(argv: list[str]) -> None:
    """Build every source in scripts/pdf_sources, or one given SRC and OUT."""
    if len(argv) == 2:
        jobs = [(Path(argv[0]), Path(argv[1]))]
    elif not argv:
        jobs = [(src, TARGET / f"{src.stem}.pdf") for src in sorted(SOURCES.glob("*.txt"))]
    else:
        raise SystemExit("usage: make_sample_pdfs.py [SRC.txt OUT.pdf]")
    for source, target in jobs:
        target.parent.mkdir(parents=True, exist_ok=True)
        pages = make_pdf(source, target)
        sys.stdout.write(f"{target}: {pages} page(s)\n")


if __name__ == "__main__":
    main(sys.argv[1:])
