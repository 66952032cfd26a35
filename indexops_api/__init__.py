"""Shared, pure types of faiss-index-operator.

Everything the three programs (operator, builder, serving) exchange is defined here
once: the FaissIndex spec and status, the build request handed to a builder Job,
the version manifest and the serving pointer. The CRD schema is generated from these
models (see ``crd.py``), so the API server, ``faissctl validate`` and the code agree.

This package must stay pure: no kopf, kubernetes, boto3 or faiss imports
(enforced by ``.importlinter``).
"""

from indexops_api.constants import API_VERSION, GROUP, KIND, PLURAL, VERSION

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "VERSION"]
