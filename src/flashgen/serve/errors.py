"""HTTP errors of the server: always a JSON body {"error": {"message", "type", "code"}}."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from flashgen.serve.jobs import DONE, Job


class ApiError(Exception):
    """An error answered as {"error": {...}} with `status`."""

    def __init__(self, status: int, message: str, type_: str, *, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.headers = status, message, type_, headers


def error_response(status: int, message: str, type_: str, headers: dict | None = None):
    body = {"error": {"message": message, "type": type_, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def result_or_raise(job: Job, *, invalid_status: int = 422):
    """A finished job's result, or the ApiError that says why it has none."""
    if job.status == DONE:
        return job.result
    if job.error and job.error["type"] in ("invalid_request_error", "out_of_memory_budget"):
        raise ApiError(invalid_status, job.error["message"], job.error["type"])
    if job.error:
        raise ApiError(500, job.error["message"], "server_error")
    raise ApiError(503, "the generation was cancelled: the server is shutting down", "cancelled")
