"""The evaluation stage: ``run`` (clip_benchmark on a task suite), ``bootstrap`` (per-sample metrics and
intervals), ``tables`` (Table 3, Table 4, plots)."""
