"""The text of an HTML page: its main content as Markdown-like blocks, without page chrome."""

from genai_assets.rag.formats import UnreadableDocumentError

# ARIA landmarks of page chrome, whatever the tag: Sphinx's related bar and sidebar are
# <div role="navigation">, measured in bench/html_extraction.py.
CHROME_ROLES = ("navigation", "search", "banner", "contentinfo")


def html_to_text(data: bytes) -> tuple[str, str | None, str | None]:
    """The page's text, its title and the encoding BeautifulSoup decoded it from."""
    from bs4 import BeautifulSoup

    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError("binary content (NUL bytes) in an HTML file")
    soup = BeautifulSoup(data, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "template"]):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": CHROME_ROLES}):
        tag.decompose()
    # The main landmark, where a page marks one, holds the content without the
    # sidebar and footer around it (Sphinx: div.body role=main).
    body = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body or soup
    if not title:
        heading = body.find(["h1", "h2"])
        title = heading.get_text(" ", strip=True) if heading else None
    blocks = []
    for element in body.find_all(
        ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "th", "dt", "dd", "blockquote"]
    ):
        if element.find_parent(["p", "li", "pre", "td", "th", "dd", "blockquote"]):
            continue  # its text is part of the enclosing block
        text = element.get_text(" " if element.name != "pre" else "", strip=element.name != "pre")
        if not text.strip():
            continue
        if element.name.startswith("h"):
            text = "#" * int(element.name[1]) + " " + text
        elif element.name == "li":
            text = "- " + text
        blocks.append(text)
    if not blocks:  # a page of bare text without block elements
        blocks = [body.get_text("\n", strip=True)]
    # BeautifulSoup decodes by the page's own declaration, else by detection.
    return "\n\n".join(blocks), title or None, soup.original_encoding
