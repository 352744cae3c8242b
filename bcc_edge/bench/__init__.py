"""Benchmarks behind `bcc-edge bench`: each reports ratios against baselines measured in the same run."""
