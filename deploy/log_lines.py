"""How a part's log line looks to a person, as `make run` and `make logs` show it on a terminal:

    api        | 03:06:00 job requested  job_id=01a2… num=12

The services write JSON lines (services/shared/logs.py), the broker log4j lines; `make run`'s own
messages are JSON lines of the same shape (`record`). Off a terminal, or with
PI_JOBS_LOG_FORMAT=json, the lines are shown as they are.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

SUPERVISOR = "pi-jobs"  # the part name of `make run`'s own messages
_NAME_WIDTH = len("calculator")
_PART_COLOURS = {
    SUPERVISOR: "1",
    "kafka": "35",
    "projector": "34",
    "calculator": "36",
    "downloader": "32",
    "api": "94",
}
_OTHER_COLOURS = ("96", "95", "92", "36", "35", "34")
_LEVEL_COLOURS = {"warning": "33", "error": "31", "critical": "1;31"}
_LOG4J_LEVELS = {"warn": "warning", "fatal": "critical"}
_READY_COLOUR = "1;32"
_NOT_FIELDS = {"time", "level", "service", "logger", "message", "exception", "ready"}
_LONGEST_VALUE = 80
# log4j's "[%d] %p %m (%c)" (deploy/kafka/log4j2.properties), in the JVM's local time.
_LOG4J_LINE = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\] (\w+) (.*?)(?: \(([\w.$]+)\))?")


def readable_wanted(setting: str | None, stream: TextIO) -> bool:
    """PI_JOBS_LOG_FORMAT: `text`, `json`, or `auto` (unset): text when `stream` is a terminal."""
    value = (setting or "auto").strip().lower()
    if value not in ("auto", "json", "text"):
        raise ValueError(f"PI_JOBS_LOG_FORMAT is auto, text or json, not {setting!r}")
    return value == "text" or (value == "auto" and stream.isatty())


def record(message: str, level: str = "info", **fields: Any) -> str:
    """A JSON line of `make run`'s own, shaped like the services' lines."""
    now = datetime.now(UTC)
    line = {
        "time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "level": level,
        "service": SUPERVISOR,
        "logger": SUPERVISOR,
        "message": message,
        **fields,
    }
    return json.dumps(line, default=str)


@dataclass(frozen=True)
class Entry:
    """What a log line says, whoever wrote it."""

    time: datetime | None
    level: str
    logger: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    exception: str = ""
    ready: bool = False


def parse(line: str) -> Entry | None:
    """A JSON line or a broker's log4j line; None for anything else (printed as it is)."""
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or "message" not in data:
            return None
        return Entry(
            time=_time(data.get("time")),
            level=str(data.get("level", "info")).lower(),
            logger=str(data.get("logger", "")),
            message=str(data["message"]),
            fields={k: v for k, v in data.items() if k not in _NOT_FIELDS},
            exception=str(data.get("exception") or ""),
            ready=data.get("ready") is True,
        )
    if match := _LOG4J_LINE.fullmatch(line):
        when, level, message, logger = match.groups()
        local = datetime.strptime(when, "%Y-%m-%d %H:%M:%S").astimezone()
        return Entry(local, _LOG4J_LEVELS.get(level.lower(), level.lower()), logger or "", message)
    return None


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)).astimezone()
    except ValueError:
        return None


def is_chatter(part: str, entry: Entry) -> bool:
    """What a person watching does not need: debug lines, uvicorn's start-up and shutdown, the
    broker's info lines (its own files keep them)."""
    if entry.level == "debug":
        return True
    quiet_info = part == "kafka" or entry.logger.startswith("uvicorn")
    return quiet_info and entry.level == "info"


@dataclass(frozen=True)
class Renderer:
    colour: bool
    # False: chatter (`is_chatter`) is left out; `make logs PART=...` shows everything.
    everything: bool = False

    def render(self, part: str, line: str) -> list[str]:
        """The lines a person sees for one log line: none, one, or one and a traceback."""
        line = line.rstrip("\n")
        entry = parse(line)
        prefix = self._paint(part.ljust(_NAME_WIDTH), _part_colour(part)) + " | "
        if entry is None:
            return [prefix + line] if line.strip() else []
        if not self.everything and is_chatter(part, entry):
            return []
        when = entry.time.strftime("%H:%M:%S ") if entry.time else ""
        level = entry.level if entry.level in _LEVEL_COLOURS else ""
        shown_level = self._paint(level, _LEVEL_COLOURS[level]) + " " if level else ""
        message, *more = entry.message.splitlines() or [""]
        if entry.ready:
            message = self._paint(message, _READY_COLOUR)
        fields = "".join(f" {key}={_value(value)}" for key, value in entry.fields.items())
        first = f"{prefix}{when}{shown_level}{message}{' ' + fields if fields else ''}"
        more += entry.exception.splitlines()  # a traceback, or a message of several lines
        return [first, *(prefix + self._paint("  " + text, "2") for text in more)]

    def _paint(self, text: str, sgr: str) -> str:
        return f"\033[{sgr}m{text}\033[0m" if self.colour else text


def _part_colour(part: str) -> str:
    return _PART_COLOURS.get(part) or _OTHER_COLOURS[sum(part.encode()) % len(_OTHER_COLOURS)]


def _value(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    if len(text) > _LONGEST_VALUE:
        text = text[: _LONGEST_VALUE - 1] + "…"
    return json.dumps(text, ensure_ascii=False) if not text or " " in text else text
