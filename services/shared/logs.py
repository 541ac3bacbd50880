"""Structured logging: one JSON object per line, naming the service and, if any, the job."""

import json
import logging
import sys
import time
from typing import Any

# Attributes every record has, and uvicorn's terminal-only duplicate of its message.
_NOT_EXTRA = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _NOT_EXTRA})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _ExpectedRetries(logging.Filter):
    """aiokafka logs at ERROR some errors it retries by itself: on a first start the group
    coordinator is not elected yet (GroupCoordinatorNotAvailableError) for a moment. They go out
    at DEBUG; a coordinator that never comes shows as a consumer that is not ready."""

    _RETRIED = (
        "GroupCoordinatorNotAvailableError",
        "CoordinatorLoadInProgressError",
        "NotCoordinatorForGroupError",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.name.startswith("aiokafka"):
            message = record.getMessage()
            if any(name in message for name in self._RETRIED):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class _OncePerInterval(logging.Filter):
    """Lets an aiokafka message through once per interval: a broker outage makes it repeat the
    same error hundreds of times a second."""

    def __init__(self, seconds: float = 10.0) -> None:
        super().__init__()
        self._seconds = seconds
        self._last_seen: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self._last_seen.get(key, -self._seconds) < self._seconds:
            return False
        if len(self._last_seen) > 1000:
            self._last_seen.clear()
        self._last_seen[key] = now
        return True


def configure_logging(service: str, level: int = logging.INFO) -> None:
    # What our lines never show, so no record spends time finding it out (the logging HOWTO's
    # "Optimization": the caller's frame, thread and process), about half of what a line costs.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(_ExpectedRetries())
    handler.addFilter(_OncePerInterval())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka reports every reconnect attempt at ERROR; keep its warnings, drop the noise.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
