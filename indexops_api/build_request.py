"""What the operator hands a builder Job (as JSON in one environment variable)."""

from __future__ import annotations

from indexops_api.base import ApiModel
from indexops_api.spec import FaissIndexSpec


class BuildRequest(ApiModel):
    index: str
    namespace: str
    version: str
    build_key: str
    spec: FaissIndexSpec
