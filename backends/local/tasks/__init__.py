"""Every task in ``backends.tasks`` (other than chat and text generation) on local models.

``LocalTasks`` (``local_tasks``) resolves and caches models and maps errors; ``RUNNERS``
(``registry``) is the one table saying how each task runs locally, or why it cannot. The
runners themselves live in family modules on the shared helpers of ``base``:

- ``pipeline``: transformers pipelines
- ``direct``: extractive question answering, summarization, translation (Auto classes)
- ``vision``: image to text, visual question answering, image to image (Auto classes)
- ``embed``: sentence similarity and feature extraction (sentence-transformers)
- ``tabular``: tabular classification and regression (scikit-learn)

Imports go one way: ``local_tasks`` → ``registry`` → family modules → ``base``. torch and
transformers are imported inside the runners, on first use.
"""

from backends.local.tasks.base import NoRunner, Runner
from backends.local.tasks.local_tasks import LocalTasks
from backends.local.tasks.registry import RUNNERS

__all__ = ["RUNNERS", "LocalTasks", "NoRunner", "Runner"]
