"""The kopf operator of faiss-index-operator.

Layout (reconcile = observe -> decide -> execute):

- ``model.py``     observation and plan types (pure)
- ``decide.py``    the pure decision: observation in, plan out (table-tested)
- ``conditions.py`` pure status/condition helpers
- ``objects.py``   pure builders of the Job, Deployment and Service manifests
- ``observe.py``   reads the API server and S3 into an observation (I/O)
- ``execute.py``   applies a plan (I/O)
- ``handlers.py``  thin kopf handlers that wake the per-index reconcile loop
- ``main.py``      console entry point
"""
