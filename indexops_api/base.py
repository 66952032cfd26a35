"""Common pydantic base: camelCase on the wire, snake_case in Python, strict keys."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every model that crosses a process boundary.

    Unknown keys are rejected (``extra="forbid"``) so that a typo in a CR, manifest or
    pointer is an error rather than silently ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict:
        """The JSON-ready dict as stored in Kubernetes or S3 (camelCase, no Nones)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
