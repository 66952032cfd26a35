"""``python -m index_serving`` is the same as the ``faiss-index-server`` console script."""

from index_serving.cli import main

main()
