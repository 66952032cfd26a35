"""Where a FaissIndex's vectors come from: ``spec.source`` (S3, PostgreSQL or a local file).

Split from ``indexops_api.spec`` so each module holds one part of the contract; ``spec``
re-exports these names. Same two forms of validation: JSON-schema constraints for the CRD
and pydantic validators for ``faissctl validate`` and the operator.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from indexops_api.base import ApiModel
from indexops_api.sqltext import single_read_statement
from indexops_api.spec_ops import (
    BUCKET_PATTERN,
    DNS_LABEL,
    DURATION_PATTERN,
    ENDPOINT_MAX_LENGTH,
    ENDPOINT_PATTERN,
)


SQL_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"


class S3Source(ApiModel):
    """Embeddings in S3: one object (``key``) or every object under ``prefix``.

    ``npy``: float (n, dimension) matrices, optional parallel int64 ids (``idsKey``, with
    ``key`` only). ``parquet``: a list/fixed-size-list float column and an optional integer
    id column.
    """

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.key) != has(self.prefix)", "message": "s3 source must set exactly one of key or prefix"},
                {"rule": "!has(self.idsKey) || (has(self.key) && self.format == 'npy')",
                 "message": "idsKey applies to a single npy key only"},
            ]
        }
    }

    bucket: Annotated[str, Field(pattern=BUCKET_PATTERN, description="Bucket holding the embeddings.")]
    key: Annotated[
        str | None,
        Field(default=None, min_length=1, max_length=1024, description="Object key; `{horizon}` is substituted."),
    ] = None
    prefix: Annotated[
        str | None,
        Field(
            default=None,
            min_length=1,
            max_length=1024,
            description="Key prefix: every object under it with the format's extension, in key order; `{horizon}` is substituted.",
        ),
    ] = None
    ids_key: Annotated[
        str | None,
        Field(
            default=None,
            max_length=1024,
            description="Optional object key of a 1-D int64 .npy of ids (row number otherwise); `{horizon}` is substituted.",
        ),
    ] = None
    format: Annotated[Literal["npy", "parquet"], Field(description="Object format.")] = "npy"
    vector_column: Annotated[
        str, Field(min_length=1, max_length=128, description="Parquet: list-of-float embedding column.")
    ] = "embedding"
    id_column: Annotated[
        str | None, Field(default=None, min_length=1, max_length=128, description="Parquet: integer id column (row number otherwise).")
    ] = None
    endpoint: Annotated[
        str | None,
        Field(
            default=None,
            pattern=ENDPOINT_PATTERN,
            max_length=ENDPOINT_MAX_LENGTH,
            description="S3 endpoint URL (http:// or https://, no credentials); defaults to spec.storage.endpoint.",
        ),
    ] = None

    @model_validator(mode="after")
    def _one_location(self) -> "S3Source":
        if (self.key is None) == (self.prefix is None):
            raise ValueError("s3 source must set exactly one of key or prefix")
        if self.ids_key is not None and (self.key is None or self.format != "npy"):
            raise ValueError("idsKey applies to a single npy key only")
        return self


class SecretKeyRef(ApiModel):
    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=253, description="Secret in the FaissIndex's namespace.")]
    key: Annotated[str, Field(min_length=1, max_length=253, description="Key in the Secret.")] = "dsn"


class TimeWindow(ApiModel):
    column: Annotated[str, Field(pattern=SQL_IDENTIFIER, max_length=128, description="Timestamp column.")]
    last: Annotated[str, Field(pattern=DURATION_PATTERN, description="Only rows newer than now minus this duration.")]


class PostgresSource(ApiModel):
    """Rows of (id, vector) from PostgreSQL, streamed with a server-side cursor."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.query) != has(self.table)", "message": "postgres source must set exactly one of query or table"}
            ]
        }
    }

    dsn_secret: Annotated[SecretKeyRef, Field(description="Secret key holding a libpq connection string.")]
    table: Annotated[str | None, Field(default=None, pattern=SQL_IDENTIFIER, max_length=128)] = None
    query: Annotated[
        str | None,
        Field(default=None, min_length=1, max_length=8192, description="SELECT returning the id and vector columns."),
    ] = None
    id_column: Annotated[str, Field(pattern=SQL_IDENTIFIER, max_length=128)] = "id"
    vector_column: Annotated[str, Field(pattern=SQL_IDENTIFIER, max_length=128)] = "embedding"
    vector_format: Annotated[
        Literal["float4[]", "bytea", "pgvector"],
        Field(description="float4[] array, bytea of little-endian float32, or pgvector's text form."),
    ] = "float4[]"
    window: Annotated[TimeWindow | None, Field(default=None, description="Optional time window.")] = None
    batch_size: Annotated[int, Field(ge=100, le=1_000_000)] = 10000

    @model_validator(mode="after")
    def _query_or_table(self) -> "PostgresSource":
        if (self.query is None) == (self.table is None):
            raise ValueError("postgres source must set exactly one of query or table")
        return self

    @field_validator("query")
    @classmethod
    def _one_read_statement(cls, value: str | None) -> str | None:
        # The API server cannot lex SQL; the operator refuses the spec (InvalidSpec) and the
        # builder and drift probe check again before connecting (indexops_api.sqltext).
        if value is not None:
            single_read_statement(value)
        return value


class FileSource(ApiModel):
    """A .npy file on the builder's filesystem (local faiss-index-builder runs)."""

    path: Annotated[str, Field(min_length=1, description="Path of the .npy matrix; `{horizon}` is substituted.")]
    ids_path: Annotated[str | None, Field(default=None, description="Optional path of an int64 ids .npy.")] = None


class Source(ApiModel):
    """Where the embeddings come from; exactly one member is set."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.s3) ? 1 : 0) + (has(self.postgres) ? 1 : 0) + (has(self.file) ? 1 : 0) == 1",
                    "message": "source must set exactly one of s3, postgres or file",
                }
            ]
        }
    }

    s3: S3Source | None = None
    postgres: PostgresSource | None = None
    file: FileSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Source":
        if sum(m is not None for m in (self.s3, self.postgres, self.file)) != 1:
            raise ValueError("source must set exactly one of s3, postgres or file")
        return self
