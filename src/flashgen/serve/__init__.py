"""`flashgen serve`: an HTTP adapter (OpenAI, AUTOMATIC1111 and native job APIs) and one web page.

No ML logic lives here: requests become `flashgen.GenerationRequest`s and run through the loaded
pipeline's `generate`, one at a time, on a single worker thread (see jobs.py).
"""

from flashgen.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
