"""The HTTP API and the page, as a plain function of a loaded classifier: `create_app`.

Images go through `runtime.iter_predictions` as `Upload`s: the same decode limits, batching,
worker threads, invoke timeout, review policy and input guard as `bcc-edge infer`, so a row
here equals infer's JSON row for the same file (its path is the upload's name, cleaned for
display: it never names a file on this machine). The count is `device.count`'s. The page
keeps the rows it received and asks the server for their count and their CSV, so each rule
has one home (the Wilson intervals, the CSV quoting) instead of a copy in JavaScript.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Literal, Optional

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from bcc_edge import __version__
from bcc_edge.device import count as counting
from bcc_edge.device.selftest import Report
from bcc_edge.device.serve.reviews import ReviewStore
from bcc_edge.device.serve.safety import Safety
from bcc_edge.errors import DEFAULT_INVOKE_TIMEOUT, BccError, ModelTimeout, one_line, printable
from bcc_edge.infer import ResultWriter
from bcc_edge.metadata import MAX_LABEL_CHARS
from bcc_edge.runtime import EdgeClassifier, Prediction, Upload, iter_predictions

PAGE = Path(__file__).resolve().parent / "page"
MAX_FILES = 256  # images in one request (the page sends smaller batches)
MAX_ROWS = 100_000  # rows the page may send back for their count or CSV
MAX_NAME_CHARS = 200
DEFAULT_QUEUE = 16
DEFAULT_MAX_UPLOAD_MB = 20
_FILES_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}},
    }
}
_REVIEW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file", "label"], "properties": {"file": {"type": "string", "format": "binary"}, "label": {"type": "string"}}}}},
    }
}


class TopK(BaseModel):
    label: str = Field(max_length=MAX_LABEL_CHARS)
    score: float = Field(ge=0, le=1)


class Row(BaseModel):
    """A row as /v1/classify returned it (infer's JSON row)."""

    path: Optional[str] = Field(None, max_length=4 * MAX_NAME_CHARS)
    label: Optional[str] = Field(None, max_length=MAX_LABEL_CHARS)
    score: Optional[float] = Field(None, ge=0, le=1)
    top_k: list[TopK] = Field(default_factory=list, max_length=1000)
    status: Literal["ok", "review", "error"]
    reasons: list[Literal["low_confidence", "out_of_distribution"]] = Field(default_factory=list, max_length=2)
    error: Optional[str] = Field(None, max_length=2000)


def display_name(raw: str | None, index: int) -> str:
    """An upload's file name fit to show: its last path component, control characters escaped,
    bounded; `upload-N` when there is none. Only ever shown, never used as a path."""
    name = printable(re.split(r"[/\\]", raw or "")[-1]).strip()[:MAX_NAME_CHARS]
    return name or f"upload-{index + 1}"


def create_app(
    classifier: EdgeClassifier,
    token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024,
    review_dir: str | Path | None = None,
    workers: int | None = None,
    queue: int = DEFAULT_QUEUE,
    invoke_timeout: float | None = DEFAULT_INVOKE_TIMEOUT,
    selftest: Report | None = None,
) -> FastAPI:
    """The app for `classifier` (create it with threads=1: `workers` run batches in parallel).
    `token`: required as `Authorization: Bearer` (see `safety`); `max_upload_bytes`: the largest
    request body; `review_dir`: where reviewed images go (None: reviews are refused); `queue`:
    POSTs in the server at once; `selftest`: the report /v1/model shows (run now if None)."""
    reviews = ReviewStore(review_dir, classifier.labels) if review_dir is not None else None
    report = selftest if selftest is not None else classifier.selftest()
    app = FastAPI(
        title="bcc-edge",
        version=__version__,
        description="Blood-cell classification on the microscope station. With --token, send `Authorization: Bearer <token>`.",
        docs_url=None,  # FastAPI's docs page loads its scripts from a CDN; /docs below is offline
        redoc_url=None,
    )
    app.add_middleware(Safety, token=token, max_body=max_upload_bytes, capacity=queue)
    app.add_exception_handler(BccError, _bcc_error)
    app.add_exception_handler(Exception, _internal_error)
    app.mount("/page", StaticFiles(directory=PAGE), name="page")

    def model_info() -> dict[str, Any]:
        return {**classifier.describe(), "path": classifier.path.name}  # not this machine's layout

    def classify(uploads: list[Upload], top_k: int) -> list[Prediction]:
        return list(iter_predictions(classifier, uploads, top_k, workers=workers, timeout=invoke_timeout))

    def predictions(rows: list[Row]) -> list[Prediction]:
        if len(rows) > MAX_ROWS:
            raise HTTPException(413, f"more than {MAX_ROWS} rows")
        known = set(classifier.labels)
        for row in rows:
            if (row.status != "error" and row.label not in known) or any(t.label not in known for t in row.top_k):
                raise HTTPException(400, "a row's label is not one of the model's labels")
        return [Prediction(r.path, r.label, r.score, tuple((t.label, t.score) for t in r.top_k), r.error, r.status, tuple(r.reasons)) for r in rows]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: always answered, without the token."""
        return {"status": "ok"}

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        """The model (labels, calibrated probabilities, review policy, input guard), its
        preprocessing, the selftest run at start and this server's limits."""
        return {
            **model_info(),
            "spec": classifier.spec.to_dict(),
            "selftest": report.to_dict(),
            "server": {"max_upload_bytes": max_upload_bytes, "max_files": MAX_FILES, "queue": queue, "reviews": reviews is not None},
        }

    @app.post("/v1/classify", openapi_extra=_FILES_BODY)
    async def classify_files(request: Request, top_k: int = Query(1, ge=1, description="Classes per row, best first.")) -> list[dict[str, Any]]:
        """One row per image in the multipart field `files` (repeat it), equal to `bcc-edge
        infer --format json` rows: label, calibrated score, top_k, status ok | review | error,
        reasons, error. An unreadable image gets an error row; the others are classified."""
        uploads = await _uploads(request)
        return [p.to_dict() for p in await run_in_threadpool(classify, uploads, top_k)]

    @app.post("/v1/count", openapi_extra=_FILES_BODY)
    async def count_files(request: Request) -> dict[str, Any]:
        """`bcc-edge count --format json` for the images in `files`: accepted, referred, errors,
        per class count, percentage and 95% interval, drift."""
        uploads = await _uploads(request)
        return {**counting.count(await run_in_threadpool(classify, uploads, 1), classifier), "model": model_info()}

    @app.post("/v1/tally")
    def tally(rows: list[Row]) -> dict[str, Any]:
        """The count (as /v1/count) of rows /v1/classify returned: the page's running count."""
        return {**counting.count(predictions(rows), classifier), "model": model_info()}

    @app.post("/v1/results.csv", response_class=Response)
    def results_csv(rows: list[Row]) -> Response:
        """The rows /v1/classify returned as `bcc-edge infer --format csv` writes them."""
        text = io.StringIO()
        writer = ResultWriter(text, "csv", max([len(r.top_k) for r in rows] + [1]))
        writer.begin()
        for prediction in predictions(rows):
            writer.write(prediction)
        return Response(text.getvalue(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": 'attachment; filename="results.csv"'})

    @app.post("/v1/review", openapi_extra=_REVIEW_BODY)
    async def review(request: Request) -> dict[str, str]:
        """Store an image (`file`) under the reviewer's `label` in --review-dir, as
        `<label>/<sha256>.<ext>`, and log it with the model's own prediction for it."""
        if reviews is None:
            raise HTTPException(404, "reviews are not stored here: start bcc-edge serve with --review-dir DIR")
        async with request.form(max_files=1, max_fields=1) as form:
            part, label = form.get("file"), form.get("label")
            if not isinstance(part, UploadFile) or not isinstance(label, str):
                raise HTTPException(400, "send the image as the multipart file `file` and the label as the field `label`")
            upload = Upload(display_name(part.filename, 0), await part.read())
        (prediction,) = await run_in_threadpool(classify, [upload], 1)
        return await run_in_threadpool(reviews.save, upload.data, label, prediction)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(PAGE / "docs.html")

    return app


async def _uploads(request: Request) -> list[Upload]:
    """The images of the multipart field `files`; 400 when there are none (or the body is not
    multipart, or is malformed: Starlette's parser answers that one)."""
    async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES) as form:
        parts = form.getlist("files")
        if not parts or not all(isinstance(p, UploadFile) for p in parts):
            raise HTTPException(400, "send the images as multipart/form-data files in the field `files`")
        return [Upload(display_name(p.filename, i), await p.read()) for i, p in enumerate(parts)]


async def _bcc_error(request: Request, exc: BccError) -> JSONResponse:
    # A model that does not finish is the server's trouble, not the request's.
    return JSONResponse({"detail": one_line(str(exc))}, 503 if isinstance(exc, ModelTimeout) else 400)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server's log (uvicorn prints it), never into a response.
    return JSONResponse({"detail": "internal error"}, 500)
