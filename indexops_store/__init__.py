"""Thin S3 I/O for the artifact layout shared by operator, builder and serving.

Only transport lives here (clients, JSON objects, files, conditional writes); what the
objects mean is defined by ``indexops_api``. Errors are raised as ``StorageError`` with
the bucket/key and a readable cause, never as raw botocore exceptions.
"""

from indexops_store.s3 import ArtifactStore, StorageError, make_client

__all__ = ["ArtifactStore", "StorageError", "make_client"]
