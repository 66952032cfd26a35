"""Thin S3 I/O for the artifact layout shared by operator, builder and serving.

Only transport lives here (clients, JSON objects, files, conditional writes, listing and
deleting prefixes); what the objects mean is defined by ``indexops_api``. Errors are raised
as ``StorageError`` with the bucket/key and a readable cause, never as raw botocore
exceptions.

Source probes (``indexops_store.probe``) and the PostgreSQL statements they share with the
builder (``indexops_store.postgres``) are imported explicitly, so that serving, which only
needs S3, never loads libpq.
"""

from indexops_store.s3 import (
    ArtifactStore,
    DeleteIncomplete,
    ObjectInfo,
    StorageError,
    StorageUnavailable,
    VersionListing,
    make_client,
)

__all__ = ["ArtifactStore", "DeleteIncomplete", "ObjectInfo", "StorageError", "StorageUnavailable", "VersionListing", "make_client"]
