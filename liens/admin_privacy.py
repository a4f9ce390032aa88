"""``liens admin`` commands for privacy: retention, and a resident's export and erasure.

- ``liens admin home set-retention --home H --days N`` — how long H keeps detailed usage rows;
- ``liens admin retention run`` — fold and delete now what is past retention (JSON report);
- ``liens admin resident export --resident R --out FILE.zip`` — everything stored about R;
- ``liens admin resident erase --resident R --yes`` — erase R and everything about them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NOT_MINE = object()


def add_home_actions(home: Any) -> None:
    p = home.add_parser("set-retention", help="days detailed usage rows are kept (7..3650)")
    p.add_argument("--home", required=True)
    p.add_argument("--days", type=int, required=True)


def add_resident_actions(resident: Any) -> None:
    p = resident.add_parser("export", help="everything stored about a resident, as one ZIP")
    p.add_argument("--resident", required=True)
    p.add_argument("--out", required=True, help="the ZIP file to write")
    p = resident.add_parser("erase", help="erase a resident and everything about them")
    p.add_argument("--resident", required=True)
    p.add_argument("--yes", action="store_true", help="required: this cannot be undone")


def add_objects(objects: Any) -> None:
    retention = objects.add_parser("retention").add_subparsers(dest="action", required=True)
    retention.add_parser("run", help="fold and delete detailed rows past each home's retention")


def dispatch(args: argparse.Namespace, *, db: Any, settings: Any, by: str) -> Any:
    """The answer of a privacy command, or :data:`NOT_MINE`."""
    from backend.services import decisions
    from liens.admin import applied

    obj, action = args.object, getattr(args, "action", None)
    if obj == "home" and action == "set-retention":
        from backend.services import retention

        with db.session() as s:
            home = retention.set_retention_days(session=s, home_id=args.home, days=args.days, by=by)
            result = {"id": home.id, "name": home.name, "retention_days": home.retention_days}
        return applied(settings, db, result, decisions.NOTHING)  # no tablet shows it
    if obj == "retention" and action == "run":
        from backend.services import retention

        report = retention.report(retention.run(db, skip_locked=False))
        return applied(settings, db, report, decisions.NOTHING)  # usage rows only
    if obj == "resident" and action == "export":
        from backend.services import subject

        out = Path(args.out)
        part = out.with_name(out.name + ".part")
        try:
            with db.session() as s, part.open("wb") as f:
                export = subject.export_resident(
                    session=s, settings=settings, resident_id=args.resident, out=f
                )
            part.replace(out)
        finally:
            part.unlink(missing_ok=True)
        return {"resident_id": args.resident, "file": str(out), "bytes": export.size}
    if obj == "resident" and action == "erase":
        from backend.services import subject
        from backend.services.errors import ServiceError

        if not args.yes:
            raise ServiceError("Erasing cannot be undone: add --yes to confirm.")
        with db.session() as s:
            erased = subject.erase_resident(
                session=s, settings=settings, resident_id=args.resident, by=by
            )
        result = applied(settings, db, erased.summary(), erased.consequences)
        return {**result, "files_removed": subject.remove_files(db, settings, erased)}
    return NOT_MINE
