from bcc_edge.cli import app

app(prog_name="bcc-edge")
