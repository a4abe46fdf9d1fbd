"""Data for `python -m edge_runtime.bench`: the fully-int8 limit models and their generator."""
