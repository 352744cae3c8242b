"""`bcc-edge serve`: the microscope station's page and HTTP API (the [serve] extra).

Why FastAPI + uvicorn + python-multipart: they are the Python ecosystem's convention for a small
HTTP API (what a lab's integrator expects to call), pure Python wheels on every board (no
compiler on a Raspberry Pi), an OpenAPI description generated from the code, and Starlette's
test client for the tests. python-multipart parses uploads as a stream, so an upload is never
held twice. No TensorFlow, nothing from training: this runs beside `bcc-edge infer`.

`app.create_app` builds the app from a loaded classifier, `safety` is what the network meets
first, `reviews` stores a reviewer's labels, `server.serve` binds and runs it; the page is plain
HTML/JS/CSS in `page/` (package data: no build step, nothing loaded from elsewhere).
"""
