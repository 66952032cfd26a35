"""``python -m index_builder`` is the same as the ``faiss-index-builder`` console script."""

from index_builder.cli import main

main()
