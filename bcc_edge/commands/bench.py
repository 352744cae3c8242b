"""`bcc-edge bench preprocess|infer`."""

import typer

from bcc_edge.commands import bench_infer, bench_preprocess

app = typer.Typer(help="Benchmarks: ratios against a baseline measured in the same run.", no_args_is_help=True)
app.command("preprocess")(bench_preprocess.bench_preprocess_command)
app.command("infer")(bench_infer.bench_infer_command)
