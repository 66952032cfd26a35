"""Which container images a FaissIndex may run, under the chart's ``allowedImages``. Pure.

``build.image`` and ``serving.image`` are tenant input: without a restriction a tenant runs
any image in their namespace under the builder's or serving ServiceAccount (and with the
DSN and S3 Secrets those pods receive). A platform team can list the images (shell-style
patterns, e.g. ``registry.example.com/faiss/*``) the operator will put into a Job or a
Deployment; the operator's own image is always allowed. Off (empty) by default.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from indexops_api.spec import FaissIndexSpec


def image_refusal(spec: FaissIndexSpec, allowed: tuple[str, ...], default_image: str) -> str | None:
    """Why the spec's images are refused (one message naming each field), or ``None``."""
    if not allowed:
        return None
    refused = []
    for field, image in (("spec.build.image", spec.build.image), ("spec.serving.image", spec.serving.image)):
        if image and image != default_image and not any(fnmatchcase(image, pattern) for pattern in allowed):
            refused.append(f"{field} {image!r}")
    if not refused:
        return None
    return (f"image not allowed: {', '.join(refused)} matches none of the operator's allowedImages "
            f"({', '.join(allowed)}); unset the field to use the operator's image, or ask the platform team")
