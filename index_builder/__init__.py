"""The builder: turns one BuildRequest into one immutable, measured index version in S3.

It runs inside a builder Job (request in ``FAISS_BUILD_REQUEST``) or locally
(``faiss-index-builder --request build.json``). It measures recall and latency but never
decides whether the version may serve: that is the operator's job.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("faiss-index-operator")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"
