"""Deployment: a serving runtime, real-time endpoints, batch transform, serverless and multi-model.

The shape (CONTRACTS.md §2–§4; DESIGN.md §8 for who may run model code):

- **Runtime** (``_codecs``, ``_runtime``, ``_fast``): a :class:`Servable` is one model
  version loaded from its verified package folder *in a serving worker process*. It
  answers a request body as SageMaker's framework containers do (the package's
  ``model_fn``/``input_fn``/``predict_fn``/``output_fn``/``transform_fn`` with their
  defaults), MLflow's scoring JSON and the Open Inference Protocol V2, and uses a
  compiled fast path (linear models as a dot product, tree ensembles through
  treelite) where one gives the framework's own outputs.
- **Serving workers** (``_app``, ``_worker``): a raw ASGI app on uvicorn with uvloop and
  httptools; the model is in the worker's own process, so a request makes no extra hop.
  Workers get no workspace credentials: they read a spec that names package folders.
- **Supervisor** (``_supervisor``): trusted Kiln code that holds the listening socket,
  starts the workers (they inherit the socket: one accept queue), replaces a killed
  one, swaps generations blue/green, scales serverless endpoints to zero, fetches
  multi-model packages for its workers, moves capture files into the store and keeps
  the endpoint's metrics. ``kiln serve`` runs one in the foreground; an endpoint's runs
  detached, recorded in the metadata database, and the server brings it back.
- **Endpoints** (``_service``, ``_ops``): create, update, describe, list, delete, invoke.
- **Batch transform** (``_transform``): a job kind over the same runtime.
"""
