"""Schemathesis hooks for the contract run (`make contract`).

The document states every rule a request must follow that a schema can state. One it cannot:
business times (`occurred_at`, the scheduler's `now`) are accepted only within a window around
the server's own clock (`time.max_behind_secs` behind, `time.max_ahead_secs` ahead; the document
says so in prose), because the server's clock, not the caller's, decides what exists now. A till
sends the time it is, so the contract run does too: a generated business time that is a valid
RFC 3339 instant is replaced by this machine's clock (the server runs on it). Anything else the
generator made (a number, a malformed or impossible time, a missing field) is left alone, so
invalid requests stay invalid and must still be refused.

Nothing else is filtered or mapped: every check runs on what the generator produced.
"""
import datetime
import re

import schemathesis

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
BUSINESS_TIMES = ("occurred_at", "now")


def _is_instant(value) -> bool:
    if not isinstance(value, str) or not RFC3339.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False  # 12:99, February 30th...
    return True


def _now() -> str:
    # A second behind, so that the server's clock has passed it when the request arrives.
    at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@schemathesis.hook
def before_call(context, case, kwargs):
    # Right before the request is sent, in every phase (examples, coverage, fuzzing, stateful).
    body = case.body
    if isinstance(body, dict) and any(_is_instant(body.get(f)) for f in BUSINESS_TIMES):
        case.body = {
            k: (_now() if k in BUSINESS_TIMES and _is_instant(v) else v) for k, v in body.items()
        }
