"""The staff's policy form, both ways: form fields -> policy JSON (with sentences per field) and
policy JSON -> the form's values and a one-line summary ("Lun–Ven 14 h–18 h · 3 appels/jour").

Pure functions, no I/O. The policy itself is the one of :mod:`kiosk.policy` (its docstring gives
the schema); :func:`kiosk.policy.validate` has the last word on what is saved.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiosk import policy as call_policy

MAX_WINDOWS = 7
DAYS = (0, 1, 2, 3, 4, 5, 6)
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(:[0-5]\d)?$")

# The policy an approval from the queue starts with: calls in the afternoon every day, not during
# the night, no auto-answer (a resident should choose to pick up until staff decide otherwise).
SAFE_DEFAULT: dict[str, Any] = {
    "windows": [{"days": list(DAYS), "start": "10:00", "end": "20:00"}],
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "max_duration_min": 30,
    "calls_per_day": 3,
    "supervised": False,
}


@dataclass
class WindowRow:
    days: set[int] = field(default_factory=set)
    start: str = ""
    end: str = ""


@dataclass
class PolicyForm:
    """The values the form shows (as typed, so a refused form comes back as the person left it)."""

    windows: list[WindowRow] = field(default_factory=list)
    quiet_on: bool = False
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    max_duration_min: str = ""
    calls_per_day: str = ""
    supervised: bool = False
    auto_answer_on: bool = False
    auto_answer_s: str = "10"


FormData = Mapping[str, Sequence[str]]


def _first(form: FormData, key: str) -> str:
    values = form.get(key) or []
    return str(values[0]).strip() if values else ""


def form_from_policy(policy: dict[str, Any] | None) -> PolicyForm:
    policy = policy or {}
    rows = [
        WindowRow(
            days=set(w.get("days", DAYS)), start=str(w.get("start", "")), end=str(w.get("end", ""))
        )
        for w in policy.get("windows") or []
        if isinstance(w, dict)
    ]
    quiet = policy.get("quiet_hours") or {}
    auto = call_policy.auto_answer_seconds(policy)
    return PolicyForm(
        windows=rows,
        quiet_on=bool(quiet),
        quiet_start=str(quiet.get("start", "21:00")),
        quiet_end=str(quiet.get("end", "08:00")),
        max_duration_min=_num_text(policy.get("max_duration_min")),
        calls_per_day=_num_text(policy.get("calls_per_day")),
        supervised=bool(policy.get("supervised", False)),
        auto_answer_on=auto is not None,
        auto_answer_s=str(auto) if auto is not None else "10",
    )


def _num_text(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def read_form(form: FormData) -> PolicyForm:
    """The form as typed; window rows marked for removal are left out."""
    count = _int_or(_first(form, "window_count"), 0)
    count = max(0, min(count, MAX_WINDOWS))
    removed = {_int_or(v, -1) for v in form.get("remove_window") or []}
    rows = []
    for i in range(count):
        if i in removed:
            continue
        days = {_int_or(v, -1) for v in form.get(f"w{i}_days") or []} & set(DAYS)
        rows.append(
            WindowRow(days=days, start=_first(form, f"w{i}_start"), end=_first(form, f"w{i}_end"))
        )
    return PolicyForm(
        windows=rows,
        quiet_on=bool(_first(form, "quiet_on")),
        quiet_start=_first(form, "quiet_start"),
        quiet_end=_first(form, "quiet_end"),
        max_duration_min=_first(form, "max_duration_min"),
        calls_per_day=_first(form, "calls_per_day"),
        supervised=bool(_first(form, "supervised")),
        auto_answer_on=_first(form, "auto_answer") == "on",
        auto_answer_s=_first(form, "auto_answer_s"),
    )


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _hhmm(text: str) -> str | None:
    match = _TIME.match(text)
    return f"{int(match.group(1)):02d}:{match.group(2)}" if match else None


def policy_from_form(
    form: PolicyForm, t: gettext.NullTranslations
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The policy, or None and a sentence per field (keys: ``w0``, ``quiet``, ``max_duration_min``,
    ``calls_per_day``, ``auto_answer``)."""
    _ = t.gettext
    errors: dict[str, str] = {}
    policy: dict[str, Any] = {}
    windows = []
    for i, row in enumerate(form.windows):
        if not row.days and not row.start and not row.end:
            continue  # an empty row added and never filled
        start, end = _hhmm(row.start), _hhmm(row.end)
        if not row.days:
            errors[f"w{i}"] = _("Tick at least one day for this time slot.")
        elif start is None or end is None:
            errors[f"w{i}"] = _("Give a start and an end time, such as 14:00 and 18:00.")
        elif start == end:
            errors[f"w{i}"] = _("The start and the end of a time slot must differ.")
        else:
            windows.append({"days": sorted(row.days), "start": start, "end": end})
    if windows:
        policy["windows"] = windows
    if form.quiet_on:
        start, end = _hhmm(form.quiet_start), _hhmm(form.quiet_end)
        if start is None or end is None:
            errors["quiet"] = _(
                "Give the start and the end of the quiet hours, such as 21:00 and 08:00."
            )
        elif start == end:
            errors["quiet"] = _("The quiet hours must start and end at different times.")
        else:
            policy["quiet_hours"] = {"start": start, "end": end}
    for key, low, high, sentence in (
        (
            "max_duration_min",
            1,
            600,
            _("The maximum duration is a number of minutes, from 1 to 600, or empty for no limit."),
        ),
        (
            "calls_per_day",
            1,
            50,
            _("The number of calls a day is a number from 1 to 50, or empty for no limit."),
        ),
    ):
        text = getattr(form, key)
        if not text:
            continue
        if not text.isdigit() or not low <= int(text) <= high:
            errors[key] = sentence
        else:
            policy[key] = int(text)
    if form.auto_answer_on:
        text = form.auto_answer_s
        if not text.isdigit() or not 3 <= int(text) <= 120:
            errors["auto_answer"] = _("Answer automatically after 3 to 120 seconds, or choose Off.")
        else:
            policy["auto_answer_s"] = int(text)
    policy["supervised"] = form.supervised
    if errors:
        return None, errors
    try:
        call_policy.validate(policy)
    except call_policy.PolicyError as exc:  # a safety net: the checks above should catch it all
        return None, {"policy": str(exc)}
    return policy, {}


# --- the one-line summary ---------------------------------------------------------------------


def _day_names(t: gettext.NullTranslations) -> list[str]:
    _ = t.gettext
    return [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


def days_text(days: Sequence[int], t: gettext.NullTranslations) -> str:
    """[0..4] -> 'Mon–Fri'; [0, 2, 4] -> 'Mon, Wed, Fri'; all -> 'Every day'."""
    names = _day_names(t)
    chosen = sorted(set(days))
    if chosen == list(DAYS):
        return t.gettext("Every day")
    runs: list[list[int]] = []
    for day in chosen:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{names[run[0]]}–{names[run[-1]]}")
        else:
            parts.extend(names[d] for d in run)
    return ", ".join(parts)


def time_text(hhmm: str, language: str) -> str:
    """'14:00' -> '14 h' in French, '14:00' in English; '14:30' -> '14 h 30'."""
    if language != "fr":
        return hhmm
    hours, minutes = hhmm.split(":")
    return f"{int(hours)} h" if minutes == "00" else f"{int(hours)} h {minutes}"


def summary(policy: dict[str, Any] | None, t: gettext.NullTranslations, language: str) -> str:
    """'Mon–Fri 14:00–18:00 · 3 calls a day · answers by itself after 10 s'."""
    policy = policy or {}
    _ = t.gettext
    try:
        call_policy.validate(policy)
    except call_policy.PolicyError:
        return _("Unreadable policy: no call is allowed")
    parts = []
    for w in policy.get("windows") or []:
        parts.append(
            f"{days_text(w.get('days', DAYS), t)} "
            f"{time_text(w['start'], language)}–{time_text(w['end'], language)}"
        )
    if not parts:
        parts.append(_("Any time"))
    quiet = policy.get("quiet_hours")
    if quiet:
        parts.append(
            _("quiet %(start)s–%(end)s")
            % {
                "start": time_text(quiet["start"], language),
                "end": time_text(quiet["end"], language),
            }
        )
    calls = policy.get("calls_per_day")
    if calls:
        parts.append(t.ngettext("%(n)d call a day", "%(n)d calls a day", calls) % {"n": calls})
    longest = policy.get("max_duration_min")
    if longest:
        parts.append(_("%(n)d min max") % {"n": longest})
    if policy.get("supervised"):
        parts.append(_("supervised"))
    auto = call_policy.auto_answer_seconds(policy)
    if auto:
        parts.append(_("answers by itself after %(n)d s") % {"n": auto})
    return " · ".join(parts)
