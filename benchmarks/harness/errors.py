"""Why a part of a case cannot run; the case reports it and the suite goes on.

    Exception
     ├── PipelineUnavailable          the Kafka pipeline: agents missing, workers do not start, a pass times out
     └── StreamFrameworkUnavailable   the baseline: its virtualenv, Redis or its Celery worker
"""

from __future__ import annotations


class PipelineUnavailable(Exception):
    """The pipeline cannot run (agents missing, workers do not start, a pass times out)."""


class StreamFrameworkUnavailable(Exception):
    """Stream Framework (or Redis) cannot run here; the case reports why and goes on."""
