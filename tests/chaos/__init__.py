"""The chaos suite (``make chaos``; a bounded slice ends ``make test``): README.md, "Proven under faults"."""
