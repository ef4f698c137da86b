"""Text from an input's bytes, by format: format detection, decoding, PDF text, titles.

HTML has its own module (:mod:`genai_assets.rag.html_text`); turning the text into a
:class:`~genai_assets.rag.documents.Document` is :func:`genai_assets.rag.documents.parse_document`.
"""

import io
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlparse

SUPPORTED_SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
# Debian's python3-doc ships reST sources as "name.rst.txt": treat them as reST.
COMPOUND_SUFFIXES = {".rst.txt": "rst"}
CONTENT_TYPES = {
    "text/markdown": "markdown",
    "text/x-rst": "rst",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}


class UnreadableDocumentError(ValueError):
    """The bytes of an input cannot be turned into text; the message says why."""


# Bytes 0x80-0x9f that cp1252 maps to printable characters (curly quotes, dashes, the
# euro sign); latin-1 maps them to C1 control codes, which real text never contains.
_CP1252_ONLY = frozenset(range(0x80, 0xA0)) - {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a plain-text file and the encoding it was decoded from.

    UTF-8 (with or without a BOM) and UTF-16 with a BOM are exact. Anything else
    that is not UTF-8 is taken as a legacy 8-bit encoding: cp1252 when it uses
    bytes only cp1252 gives characters to, else latin-1 (ISO-8859-1), which
    decodes any byte, so the choice is reported in the metadata.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as error:
            raise UnreadableDocumentError(f"not valid UTF-16 despite its BOM ({error})") from error
    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _CP1252_ONLY.intersection(data):
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass  # one of the five bytes cp1252 leaves undefined: latin-1 decodes it
    return data.decode("latin-1"), "latin-1"


def pdf_to_text(data: bytes) -> tuple[str, str | None]:
    """The text of a PDF's pages and its metadata title, if it has one."""
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableDocumentError(f"not a readable PDF ({error})") from error
    return "\n\n".join(pages), (str(title).strip() or None) if title else None


def normalise_text(text: str) -> str:
    """Unicode NFC, Unix line ends, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x0c", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def detect_format(name: str, content_type: str | None = None) -> str | None:
    """The document format from a file name, else from an HTTP content type."""
    lowered = name.lower()
    for suffix, fmt in COMPOUND_SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    fmt = SUPPORTED_SUFFIXES.get(Path(urlparse(lowered).path).suffix)
    if fmt is None and content_type:
        fmt = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
    return fmt


_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_MD_FRONT_MATTER_TITLE = re.compile(
    r"\A---\n(?:.*\n)*?title:\s*[\"']?(.+?)[\"']?\s*\n(?:.*\n)*?---"
)
_RST_UNDERLINE = re.compile(
    r"^(?P<over>([=\-~^\"'`#*+])\2{2,}\n)?(?P<title>[^\n]+)\n([=\-~^\"'`#*+])\4{2,}$", re.MULTILINE
)


def find_title(text: str, fmt: str) -> str | None:
    """The document's title where its format marks one (heading, underline, first line)."""
    if fmt == "markdown":
        match = _MD_FRONT_MATTER_TITLE.match(text) or _MD_HEADING.search(text)
        return match.group(1).strip() if match else None
    if fmt == "rst":
        match = _RST_UNDERLINE.search(text)
        return match.group("title").strip() if match else None
    first_line = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return first_line if 0 < len(first_line) <= 120 else None
