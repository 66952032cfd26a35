"""``faissctl`` (also ``kubectl faiss``): the command line for FaissIndex users.

It answers the questions people otherwise answer with ``kubectl describe`` and an S3
browser (what serves, what is building, why it failed, which versions exist), and wraps
the few write actions the operator accepts from people: the rebuild / promote / abort
annotations and ``spec.rollout.pinnedVersion``. It never writes status and never talks
to the operator directly; the operator stays the single writer and decider.

Layout: ``commands/`` holds the click commands (thin: parse, call, print); the modules
next to it are pure (``summary``, ``versions``, ``validate``, ``output``, ``gates``,
``watch``) or thin I/O behind small interfaces (``kube``, ``bench``, ``local_build``) so
unit tests can fake the cluster, the store and HTTP.
"""

__version__ = "0.1.0"
