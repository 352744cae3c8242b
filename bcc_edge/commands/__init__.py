"""Typer command wrappers. Each is a thin shell over a plain Python function; heavy modules
(TensorFlow above all) are imported inside the command so `bcc-edge infer` stays TF-free."""
