"""The evaluation stage: ``run`` (clip_benchmark on a task suite), ``bootstrap`` (per-sample metrics and
intervals), ``grouped`` (DataComp's worst-group metrics), ``winogavil`` (DataComp's WinoGAViL scoring),
``tables`` (Table 3, Table 4, plots)."""
