"""The benchmark cases, one module each (``run.py`` lists them). A case imports only the harness
(``benchmarks.harness``), never another case; ``case1_raw_writer`` and ``case6_plan_probe`` are the
child processes of cases 1 and 6."""
