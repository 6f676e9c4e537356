"""`detic serve`: an HTTP detection service (FastAPI + uvicorn) over the engine's Predictor.

errors.py (the JSON error), limits.py (upload and image checks), vocab_cache.py (request vocabularies,
LRU over the on-disk cache), batcher.py (dynamic batching), runner.py (a batch through the Predictor),
service.py (one detection request end to end), app.py (the routes)."""
