"""The benchmark corpus: Debian's python3-doc reST sources, or the sample corpus.

Everything here is deterministic: the same machine state gives the same files,
the same edits and the same replicas, so two runs of the benchmark compare.
"""

import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

DEBIAN_PACKAGE = "python3-doc"
# The reST sources ship in the versioned package python3-doc depends on
# (python3.11-doc on Debian 12); dpkg lists both.
SOURCES_MARKER = "/_sources/"
SOURCES_SUFFIX = ".rst.txt"
# The issue measures "about 300 files": python3-doc has 497 sources, from stubs of
# a few hundred bytes to 130 kB release notes. The default subset is the 300
# files around the median size (ranks 99..398 by size, ties by path): no stubs,
# no giant changelogs, about 3.6 MB of reST, about 4,000 chunks of 256 tokens.
DEFAULT_SUBSET_SIZE = 300
# Accented variants of "e": NFD-decomposable, so the model's uncased tokenizer
# (which strips accents) sees exactly the same tokens, while the texts differ.
_E_VARIANTS = ("e", "é", "è", "ê", "ë", "ē", "ĕ", "ė", "ę", "ě")


@dataclass(frozen=True)
class Corpus:
    """A list of files under one root, and how they were chosen."""

    root: Path
    files: tuple[Path, ...]
    description: str

    @property
    def relative_files(self) -> list[str]:
        return [str(path.relative_to(self.root)) for path in self.files]

    @property
    def total_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


def debian_doc_files() -> list[Path]:
    """Every regular file installed by python3-doc (and the versioned package it pulls in)."""
    packages = [DEBIAN_PACKAGE]
    depends = subprocess.run(
        ["dpkg-query", "-W", "-f=${Depends}", DEBIAN_PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    if depends.returncode != 0:
        return []
    for clause in depends.stdout.split(","):
        name = clause.strip().split(" ")[0]
        if name.startswith("python3") and name.endswith("-doc"):
            packages.append(name)
    listing = subprocess.run(["dpkg", "-L", *packages], capture_output=True, text=True, check=False)
    return sorted({Path(line) for line in listing.stdout.splitlines() if Path(line).is_file()})


def debian_doc_sources() -> list[Path]:
    """The reST sources installed by python3-doc."""
    return [
        path
        for path in debian_doc_files()
        if SOURCES_MARKER in str(path) and str(path).endswith(SOURCES_SUFFIX)
    ]


def debian_doc_html() -> list[Path]:
    """The HTML pages installed by python3-doc (the same docs, rendered: about 530 pages)."""
    return [path for path in debian_doc_files() if path.suffix == ".html"]


def median_subset(files: list[Path], size: int) -> list[Path]:
    """The ``size`` files around the median file size, returned sorted by path."""
    if len(files) <= size:
        return sorted(files)
    by_size = sorted(files, key=lambda path: (path.stat().st_size, str(path)))
    start = (len(by_size) - size) // 2
    return sorted(by_size[start : start + size])


def common_root(files: list[Path]) -> Path:
    root = files[0].parent
    while not all(root in path.parents for path in files):
        root = root.parent
    return root


def evenly_spaced(files: list[Path], count: int) -> list[Path]:
    """``count`` files spread evenly over ``files`` (in their order): indices i * n // count."""
    if count >= len(files):
        return list(files)
    return [files[i * len(files) // count] for i in range(count)]


def select_corpus(
    corpus_dir: Path | None, limit: int | None, subset: str, sample: int | None = None
) -> Corpus:
    """The files to ingest.

    Args:
        corpus_dir: A folder to ingest (every file below it); None means python3-doc's
            reST sources when installed, else the project's sample corpus.
        limit: Keep only the first N files sorted by path (after the subset).
        subset: For python3-doc: ``median300`` (default) or ``all`` (497 files).
        sample: Keep N files evenly spaced over the sorted list (after the subset,
            before ``limit``): a smaller corpus with the same mix of sections.
    """
    if corpus_dir is not None:
        if not corpus_dir.is_dir():
            raise FileNotFoundError(f"--corpus {corpus_dir}: not a folder")
        files = sorted(path for path in corpus_dir.rglob("*") if path.is_file())
        root, description = corpus_dir, f"every file under {corpus_dir}"
    else:
        files = debian_doc_sources()
        if files:
            root = common_root(files)
            if subset == "median300":
                files = median_subset(files, DEFAULT_SUBSET_SIZE)
                description = (
                    f"python3-doc reST sources under {root}: the {DEFAULT_SUBSET_SIZE} files "
                    "around the median size (of all 497)"
                )
            else:
                description = f"python3-doc reST sources under {root}: all {len(files)} files"
        else:
            from genai_assets import settings

            root = settings.SAMPLE_CORPUS_DIR
            if not root.is_dir():
                raise FileNotFoundError(
                    f"python3-doc is not installed and the sample corpus {root} is missing"
                )
            files = sorted(path for path in root.rglob("*") if path.is_file())
            description = f"the sample corpus {root} (python3-doc is not installed)"
    if sample is not None:
        files = evenly_spaced(files, sample)
        description += (
            f", {len(files)} of them evenly spaced in path order (files[i * n // {sample}])"
        )
    if limit is not None:
        files = files[:limit]
        description += f", first {limit} sorted by path"
    if not files:
        raise ValueError(f"no files to ingest ({description})")
    return Corpus(root=root, files=tuple(files), description=description)


def copy_corpus(corpus: Corpus, destination: Path) -> Corpus:
    """Copy the corpus into ``destination`` (keeping relative paths) so it can be edited."""
    copied = []
    for source, relative in zip(corpus.files, corpus.relative_files, strict=True):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied.append(target)
    return Corpus(root=destination, files=tuple(copied), description=corpus.description)


@dataclass(frozen=True)
class Change:
    """What the "1% changed" phase did to the copied corpus."""

    edited: list[str]
    deleted: str


def change_one_percent(corpus: Corpus) -> Change:
    """Edit 1% of the files (at least one) in the middle and delete one more file.

    The edit inserts a sentence into the paragraph at the middle line of the file,
    so a chunk-level pipeline can keep the untouched chunks' vectors, and a
    document-level one re-embeds the whole document.
    """
    files = list(corpus.files)
    if len(files) < 2:
        raise ValueError("the 1% changed phase needs at least 2 files")
    count = max(1, round(len(files) / 100))
    step = len(files) // count
    edited = [files[i * step] for i in range(count)]
    deleted = files[(step // 2) if step > 1 else len(files) - 1]
    if deleted in edited:
        deleted = next(path for path in reversed(files) if path not in edited)
    for path in edited:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        middle = len(lines) // 2
        while middle < len(lines) - 1 and not lines[middle].strip():
            middle += 1
        lines.insert(
            middle,
            "This sentence was added by the ingestion benchmark to change the document.\n",
        )
        path.write_text("".join(lines), encoding="utf-8")
    deleted.unlink()
    return Change(
        edited=[str(path.relative_to(corpus.root)) for path in edited],
        deleted=str(deleted.relative_to(corpus.root)),
    )


def replicate_corpus(corpus: Corpus, destination: Path, copies: int) -> Corpus:
    """``copies`` replicas of the corpus under ``copy_NN/``, each chunk text unique.

    Replica k writes every "e" as the k-th accented variant of "e". The model's
    tokenizer strips accents, so every replica has the same tokens and chunk
    boundaries as the original (exactly ``copies`` times the chunks and the
    embedding work), but no chunk text repeats across replicas, so deduplication
    of identical texts cannot shrink the work.
    """
    if not 1 <= copies <= len(_E_VARIANTS):
        raise ValueError(f"copies must be between 1 and {len(_E_VARIANTS)}, got {copies}")
    written = []
    for copy in range(copies):
        variant = _E_VARIANTS[copy]
        for source, relative in zip(corpus.files, corpus.relative_files, strict=True):
            text = source.read_text(encoding="utf-8")
            if variant != "e":
                text = text.replace("e", unicodedata.normalize("NFC", variant))
            target = destination / f"copy_{copy:02d}" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return Corpus(
        root=destination,
        files=tuple(written),
        description=f"{copies} replicas of: {corpus.description}",
    )
