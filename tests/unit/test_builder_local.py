"""`index_builder.local.DirectoryS3`: the S3 calls of ArtifactStore, answered from a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from index_builder.local import DirectoryS3
from indexops_store.s3 import ArtifactStore, StorageError

PREFIX = "faiss-indexes/local/demo/6h/versions/"


def _store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(DirectoryS3(tmp_path, PREFIX), "unused")


def test_objects_land_in_version_folders_and_list_back_with_sizes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    source = tmp_path / "src.bin"
    source.write_bytes(b"12345")
    store.upload_file(source, PREFIX + "v1/index.faiss")
    store.put_bytes(PREFIX + "v1/manifest.json", b"{}", if_none_match=True)
    assert (tmp_path / "v1" / "index.faiss").read_bytes() == b"12345"
    source.unlink()
    listing = store.list_versions(PREFIX.removesuffix("/versions/"))
    assert list(listing) == ["v1"] and listing["v1"].files == {"index.faiss": 5, "manifest.json": 2}
    assert store.get_json(PREFIX + "v1/manifest.json")[0] == {}


def test_the_manifest_is_written_only_if_absent(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put_bytes(PREFIX + "v1/manifest.json", b'{"a": 1}', if_none_match=True)
    with pytest.raises(StorageError) as info:
        store.put_bytes(PREFIX + "v1/manifest.json", b'{"a": 2}', if_none_match=True)
    assert info.value.conflict and store.get_json(PREFIX + "v1/manifest.json")[0] == {"a": 1}


def test_missing_objects_are_not_found_and_keys_outside_the_prefix_are_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert not store.exists(PREFIX + "v1/manifest.json")
    for key in ("elsewhere/x", PREFIX + "../../escape", PREFIX):
        with pytest.raises(StorageError) as info:
            store.put_bytes(key, b"x")
        assert info.value.denied
    assert sorted(p.name for p in tmp_path.iterdir()) == []
