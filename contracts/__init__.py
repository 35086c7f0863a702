"""What the blocks agree on, as code: shared by portal, pipeline, serving and model_registry.

The four blocks meet through the ledger database, HTTP and the MLflow registry
(see docs/architecture.md). The few definitions two of them must share live
here, and this package imports none of them:

* ``settings`` - where runtime state lives (``VAR_DIR``) and the ledger's URL
  (``DATABASE_URL``), read from the environment;
* ``ledger_export`` - the files of a ledger export (a bank's, or the
  simulator's): written by ``pipeline.simulate``, loaded by the portal's importer;
* ``allocation`` - the allocation rule the ledger applies and the simulator replays;
* ``decisions`` - the default approval threshold of the ML method.
"""
