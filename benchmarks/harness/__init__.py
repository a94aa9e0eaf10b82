"""What the benchmark cases share (``benchmarks/cases/`` imports from here; nothing here imports a case).

==============  ===============================================================================
context         ``Context``: settings, sizes, the run's id, stamp, keyspaces; paths of the suite
workload        the synthetic follow graph and activities (standard library only)
inputs          fanout events, activities and follow edges made from the workload
stores          Cassandra keyspaces (connect, drop) and loading follow graphs into a store
eager           one eager pass through ``Fanout``; planner sinks that count or keep chunks
pipeline        ``Session``: the real Kafka pipeline under measurement (topics, tracker, watcher)
workers         the pipeline's worker processes (planner, writers, follows agents)
rawload         raw timeline writes: the workload's planned rows, write strategies, client processes
stack           the servers measured: waiting for the node and the group coordinator, --fresh-stack,
                restarting one node with a server config (server_config.py)
summary         the results' top-level ``summary`` (numbers only) and its run counts
tracking        chunks seen, committed offsets over time, ``PassResult``, latency percentiles
processes       child environments, stopping processes, CPU seconds, is a service reachable
memory          RSS from /proc (sampled while something runs), tracemalloc peaks
stats           medians, per-follower percentiles, result rows
profiles        cProfile listings and their top functions
report          the console table, ``<stamp>.json`` and ``<stamp>.md``
plots           the PNG plots (matplotlib)
errors          ``PipelineUnavailable``, ``StreamFrameworkUnavailable``
sfenv           Stream Framework's own virtualenv, Redis and Celery worker (cases 2 and 7)
sf_bench        the Stream Framework driver; runs in that virtualenv only, never imported here
==============  ===============================================================================
"""
