"""The serving pointer: which version(s) serving replicas must load.

One small object per index, written only by the operator with a conditional write
(``generation`` increases by one each write) and read by every serving replica.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from indexops_api.base import ApiModel


class ServingPointer(ApiModel):
    generation: Annotated[int, Field(ge=1)]
    stable_version: str
    candidate_version: str | None = None
    candidate_percent: Annotated[int, Field(ge=0, le=100)] = 0
    # Share of stable-routed queries also run against the candidate (results compared for
    # overlap@k, never returned): the online analysis of a rollout step.
    shadow_percent: Annotated[int, Field(ge=0, le=100)] = 0
    updated_at: str

    @model_validator(mode="after")
    def _candidate_consistent(self) -> "ServingPointer":
        if self.candidate_version is None and self.candidate_percent:
            raise ValueError("candidatePercent set without candidateVersion")
        return self
