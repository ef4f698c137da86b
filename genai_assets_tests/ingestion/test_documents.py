"""Loading documents: formats, titles, ids, bad inputs, sources."""

import pytest

from genai_assets import settings
from genai_assets.automation.retries import TransientExternalError
from genai_assets.rag import documents, sources
from genai_assets.rag.documents import Document
from genai_assets.rag.sources import SkippedInput, SourceNotFoundError


def load_one(path, **kwargs):
    results = list(documents.iter_documents([str(path)], **kwargs))
    assert len(results) == 1
    return results[0]


@pytest.mark.parametrize(
    ("name", "content", "title", "fragment"),
    [
        ("guide.md", "# Restore guide\n\nRun `skyvault restore`.\n", "Restore guide", "skyvault"),
        ("ref.rst", "Retention\n=========\n\nKeep 30 daily snapshots.\n", "Retention", "30 daily"),
        ("rst-source.rst.txt", "Title\n*****\n\nBody text.\n", "Title", "Body text"),
        ("notes.txt", "Release notes\n\nFixed a bug.\n", "Release notes", "Fixed a bug"),
        (
            "page.html",
            "<html><head><title>Console</title><style>p{}</style><script>var x=1;</script>"
            "</head><body><nav>Home | Docs</nav><h1>Web console</h1><p>Port <b>8443</b>.</p>"
            "<ul><li>first</li><li>second</li></ul></body></html>",
            "Console",
            "Port 8443",
        ),
    ],
)
def test_formats_give_text_and_title(tmp_path, name, content, title, fragment):
    path = tmp_path / name
    path.write_text(content)
    doc = load_one(path)
    assert isinstance(doc, Document)
    assert doc.title == title
    assert fragment in doc.text
    assert doc.content_hash == documents.content_hash(doc.text)
    assert doc.size_bytes == path.stat().st_size


def test_html_drops_script_style_and_navigation(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><style>body{color:red}</style></head><body><nav>Menu</nav>"
        "<script>alert('x')</script><p>Visible text.</p><footer>Footer</footer></body></html>"
    )
    text = load_one(path).text
    assert text == "Visible text."


def test_html_keeps_the_main_landmark_without_navigation_roles(tmp_path):
    # The shape of a Sphinx page (python3-doc): navigation bars and the sidebar are
    # divs with role=navigation, the footer a plain div outside role=main.
    path = tmp_path / "sphinx.html"
    path.write_text(
        "<html><head><title>json</title></head><body>"
        '<div class="related" role="navigation"><ul><li>index</li><li>modules</li></ul></div>'
        '<div class="document"><div class="body" role="main"><h1>json</h1>'
        "<p>Encode and decode JSON.</p></div></div>"
        '<div class="sphinxsidebar" role="navigation"><h3>Previous topic</h3>'
        '<div role="search"><p>Quick search</p></div></div>'
        '<div class="footer"><p>Copyright the authors.</p></div></body></html>'
    )
    doc = load_one(path)
    assert doc.text == "# json\n\nEncode and decode JSON."
    assert doc.title == "json"


def test_pdf_text_and_title_from_the_sample_corpus():
    pdfs = sorted(settings.SAMPLE_CORPUS_DIR.rglob("*.pdf"))
    assert pdfs, "the sample corpus ships PDFs"
    doc = load_one(pdfs[0])
    assert doc.format == "pdf"
    assert doc.title
    assert len(doc.text.split()) > 50


def test_normalisation_makes_hash_independent_of_line_ends_and_trailing_space(tmp_path):
    (tmp_path / "a.md").write_bytes(b"# T\r\n\r\n\r\n\r\nLine one   \r\nLine two\r\n")
    (tmp_path / "b.md").write_bytes(b"# T\n\nLine one\nLine two\n")
    a, b = (load_one(tmp_path / n) for n in ("a.md", "b.md"))
    assert a.text == b.text == "# T\n\nLine one\nLine two"
    assert a.content_hash == b.content_hash
    assert a.doc_id != b.doc_id  # ids come from the source URI, not the content


def test_document_ids_are_stable_and_relative_to_the_configured_source(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.md").write_text("# X\n\nText.")
    first = load_one(folder)
    second = load_one(folder)
    assert first.doc_id == second.doc_id == documents.document_id(f"{folder}/sub/x.md")
    assert first.uri == f"{folder}/sub/x.md"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"  \n\n\t\n", "empty file"),
        ("binary.md", b"\x89PNG\x00\x01\x02binary", "binary content"),
        ("broken.pdf", b"%PDF-1.4\nthis is not a pdf at all", "not a readable PDF"),
        ("fake.pdf", b"hello", "not a PDF"),
        ("image.png", b"\x89PNG\r\n\x1a\n", "unsupported format"),
    ],
)
def test_bad_inputs_are_skipped_with_a_reason(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    result = documents.load_entry(next(sources.iter_source_entries(str(path), include=["*"])))
    assert isinstance(result, SkippedInput)
    assert result.uri == str(path)
    assert reason in result.reason


def test_too_large_input_is_skipped(tmp_path):
    (tmp_path / "big.md").write_text("word " * 1000)
    result = load_one(tmp_path / "big.md", max_bytes=100)
    assert isinstance(result, SkippedInput)
    assert "too large" in result.reason


def test_one_bad_file_does_not_stop_the_others():
    folder = settings.PACKAGE_DATA / "bad_documents"
    results = list(documents.iter_documents([str(folder)], include=["*"]))
    loaded = [r for r in results if isinstance(r, Document)]
    skipped = {r.uri.rsplit("/", 1)[-1]: r.reason for r in results if isinstance(r, SkippedInput)}
    assert [d.uri.rsplit("/", 1)[-1] for d in loaded] == ["latin1.txt", "ok.md"]
    assert loaded[0].encoding == "latin-1"
    assert set(skipped) >= {"empty.md", "blank.txt", "binary.md", "broken.pdf"}
    assert all(skipped.values())


def test_missing_source_fails_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceNotFoundError, match="nowhere"):
        list(documents.iter_documents([str(missing)]))
    with pytest.raises(SourceNotFoundError, match="matches no file"):
        list(documents.iter_documents([str(tmp_path / "*.md")]))


def test_glob_source_recurses_and_names_documents_by_relative_path(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.md").write_text("# One\n\nx")
    (tmp_path / "a" / "b" / "two.md").write_text("# Two\n\ny")
    (tmp_path / "a" / "b" / "skip.txt").write_text("not matched")
    pattern = f"{tmp_path}/a/**/*.md"
    uris = [d.uri for d in documents.iter_documents([pattern])]
    assert uris == [f"{tmp_path}/a/b/two.md", f"{tmp_path}/a/one.md"]


def test_unreachable_url_is_an_outage_not_a_skipped_input():
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    # Skipping it would delete its document from the index (test_source_failures.py).
    with pytest.raises(TransientExternalError, match="127.0.0.1:9"):
        load_one("http://127.0.0.1:9/missing.md", http_timeout_s=2)


@pytest.mark.parametrize(
    ("data", "encoding", "text"),
    [
        ("Café crème".encode("latin-1"), "latin-1", "Café crème"),
        ("“Smart” quotes – 5 €".encode("cp1252"), "cp1252", "“Smart” quotes – 5 €"),
        ("naïve".encode(), "utf-8", "naïve"),
        ("\ufeffBOM first".encode(), "utf-8", "BOM first"),
        ("Grüße".encode("utf-16"), "utf-16", "Grüße"),
    ],
)
def test_legacy_encodings_are_decoded_and_reported(tmp_path, data, encoding, text):
    (tmp_path / "notes.txt").write_bytes(data)
    doc = load_one(tmp_path / "notes.txt")
    assert isinstance(doc, Document)
    assert (doc.text, doc.encoding, doc.manifest_row()["encoding"]) == (text, encoding, encoding)


def test_every_folder_entry_not_ingested_is_listed_with_its_reason(tmp_path):
    (tmp_path / "ok.md").write_text("# OK\n\nFine.")
    (tmp_path / "x.md").mkdir()  # a folder named like a document
    (tmp_path / "x.md" / "inner.md").write_text("# Inner\n\nIngested.")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "lost.md").symlink_to(tmp_path / "nowhere.md")
    (tmp_path / "lost.bin").symlink_to(tmp_path / "nowhere.bin")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: main")  # hidden: not a source entry
    results = {
        r.uri.removeprefix(f"{tmp_path}/"): r for r in documents.iter_documents([str(tmp_path)])
    }
    assert sorted(results) == ["logo.png", "lost.bin", "lost.md", "ok.md", "x.md", "x.md/inner.md"]
    assert isinstance(results["ok.md"], Document) and isinstance(results["x.md/inner.md"], Document)
    kinds = {uri: (r.kind, r.reason) for uri, r in results.items() if isinstance(r, SkippedInput)}
    assert kinds["x.md"] == (
        sources.NOT_SELECTED,
        "a folder whose name matches the include patterns",
    )
    assert (
        kinds["logo.png"][0] == sources.NOT_SELECTED and "include patterns" in kinds["logo.png"][1]
    )
    for link in ("lost.md", "lost.bin"):
        assert kinds[link][0] == sources.UNAVAILABLE and "dangling symlink" in kinds[link][1]


def test_unchanged_bytes_reuse_the_previous_extraction(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<title>Page</title><p>Body text.</p>")
    first = load_one(path)
    row = first.manifest_row()
    again = documents.load_entry(next(sources.iter_source_entries(str(path))), previous=row)
    assert (
        isinstance(again, documents.UnchangedDocument)
        and again.row["content_hash"] == row["content_hash"]
    )
    path.write_text("<title>Page</title><p>New body text.</p>")
    changed = documents.load_entry(next(sources.iter_source_entries(str(path))), previous=row)
    assert isinstance(changed, Document) and changed.content_hash != row["content_hash"]
    stale_loader = {**row, "loader_version": documents.LOADER_VERSION - 1}
    path.write_text("<title>Page</title><p>Body text.</p>")
    entry = next(sources.iter_source_entries(str(path)))
    assert isinstance(documents.load_entry(entry, previous=stale_loader), Document)


def test_http_source_is_fetched_and_parsed(tmp_path):
    import http.server
    import threading

    (tmp_path / "doc.html").write_text("<title>Served</title><p>From a real HTTP server.</p>")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path), **k
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        doc = load_one(f"http://127.0.0.1:{server.server_port}/doc.html")
    finally:
        server.shutdown()
    assert isinstance(doc, Document)
    assert doc.title == "Served"
    assert doc.text == "From a real HTTP server."


def test_s3_prefix_source_against_a_real_local_s3_server(s3_client):
    s3_client.create_bucket(Bucket="docs")
    s3_client.put_object(Bucket="docs", Key="kb/a.md", Body=b"# A\n\nAlpha.")
    s3_client.put_object(Bucket="docs", Key="kb/sub/b.txt", Body=b"Beta line\n\nBody.")
    s3_client.put_object(Bucket="docs", Key="kb/c.bin", Body=b"\x00\x01")
    s3_client.put_object(Bucket="docs", Key="other/d.md", Body=b"# D")
    results = list(documents.iter_documents(["s3://docs/kb/"], s3_client=s3_client))
    assert [(r.uri, r.title) for r in results if isinstance(r, Document)] == [
        ("s3://docs/kb/a.md", "A"),
        ("s3://docs/kb/sub/b.txt", "Beta line"),
    ]
    listed = [(r.uri, r.kind) for r in results if isinstance(r, SkippedInput)]
    assert listed == [("s3://docs/kb/c.bin", sources.NOT_SELECTED)]
    with pytest.raises(SourceNotFoundError, match="no object"):
        list(documents.iter_documents(["s3://docs/nothing/"], s3_client=s3_client))


@pytest.mark.parametrize(
    ("source", "uri", "covered"),
    [
        ("/docs", "/docs/a.md", True),
        ("/docs/", "/docs/sub/b.md", True),
        ("/docs", "/docs-old/a.md", False),  # a sibling folder is another source
        ("/docs/a.md", "/docs/a.md", True),
        ("/docs/**/*.md", "/docs/sub/c.md", True),
        ("/docs/**/*.md", "/other/c.md", False),
        ("s3://kb/docs", "s3://kb/docs-2026/a.md", True),  # an S3 prefix need not end at "/"
        ("s3://kb/docs/", "s3://kb/other/a.md", False),
        ("https://example.test/a.md", "https://example.test/a.md", True),
    ],
)
def test_which_documents_a_source_covers(source, uri, covered):
    # Decides which records a run may drop: never those of another source's documents.
    assert sources.source_covers(source, uri) is covered
