"""Common pydantic base: camelCase on the wire, snake_case in Python, strict keys."""

from typing import Any, Self

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

    def updated(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (snake_case field names), validated like a new object.

        Unlike ``model_copy(update=...)``, which stores whatever it is given, a misspelt field
        name raises ``KeyError`` and a value of the wrong type raises ``ValidationError``, so a
        typo in a status update fails a test instead of vanishing. Field values already held
        (nested models included) are passed through as they are.
        """
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise KeyError(f"{type(self).__name__} has no field(s) {', '.join(unknown)}")
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self).model_validate({**values, **changes})

    def to_wire(self) -> dict:
        """The JSON-ready dict as stored in Kubernetes or S3 (camelCase, no Nones)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
