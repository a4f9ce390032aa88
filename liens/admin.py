"""``liens admin …``: manage homes, residents, contacts, approvals and tablets; prints JSON.

Every change goes through the service functions (so it is in the audit log), and once committed
its consequences go through the apply step (``backend.apply.apply_from_another_process``): the
tablets get their new configuration, the serving replicas end the calls and close the pages it
no longer allows, retired tablets leave the broker. Every command that writes prints what was
applied under ``"applied"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from liens import admin_privacy


def add_parser(sub: Any) -> None:
    admin = sub.add_parser("admin", help="administration (prints JSON)")
    admin.add_argument("--by", default=None, help="who is acting (audit log); default cli:$USER")
    objects = admin.add_subparsers(dest="object", required=True)

    home = objects.add_parser("home").add_subparsers(dest="action", required=True)
    p = home.add_parser("add")
    p.add_argument("--name", required=True)
    p.add_argument("--timezone", default="Europe/Paris")
    home.add_parser("list")
    admin_privacy.add_home_actions(home)

    resident = objects.add_parser("resident").add_subparsers(dest="action", required=True)
    p = resident.add_parser("add")
    p.add_argument("--home", required=True)
    p.add_argument("--first-name", required=True)
    p.add_argument("--last-name", default="")
    p.add_argument("--kind", choices=["senior", "youth"], default="senior")
    p.add_argument("--language", choices=["fr", "en"], default="fr")
    p = resident.add_parser("list")
    p.add_argument("--home", default=None)
    admin_privacy.add_resident_actions(resident)

    contact = objects.add_parser("contact").add_subparsers(dest="action", required=True)
    p = contact.add_parser("add")
    p.add_argument("--home", required=True)
    p.add_argument("--name", required=True, help="the name the resident knows (e.g. 'Julie')")
    p.add_argument("--relation", default="")
    p.add_argument("--email", default="")
    p = contact.add_parser("list")
    p.add_argument("--home", default=None)

    for verb in ("approve", "revoke"):
        p = objects.add_parser(verb)
        p.add_argument("--resident", required=True)
        p.add_argument("--contact", required=True)
        if verb == "revoke":
            p.add_argument("--reason", default="")
        else:
            p.add_argument(
                "--policy",
                default=None,
                help='JSON, e.g. \'{"windows": [{"days": [0,1,2,3,4], "start": "14:00", '
                '"end": "18:00"}], "auto_answer_s": 10}\'',
            )
    approval = objects.add_parser("approval").add_subparsers(dest="action", required=True)
    p = approval.add_parser("list")
    p.add_argument("--resident", default=None)

    tablet = objects.add_parser("tablet").add_subparsers(dest="action", required=True)
    p = tablet.add_parser("add")
    p.add_argument("--home", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--resident", action="append", default=[], help="repeat; default: whole home")
    p.add_argument("--ttl-hours", type=int, default=None)
    p = tablet.add_parser("code", help="a new one-time enrolment code")
    p.add_argument("--tablet", required=True)
    p.add_argument("--ttl-hours", type=int, default=None)
    p = tablet.add_parser("retire")
    p.add_argument("--tablet", required=True)
    p = tablet.add_parser("list")
    p.add_argument("--home", default=None)

    staff = objects.add_parser("staff", help="dashboard accounts").add_subparsers(
        dest="action", required=True
    )
    p = staff.add_parser("add", help="create a staff account (the first one: --role admin)")
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=["admin", "staff"], default="staff")
    p.add_argument("--home", action="append", default=[], help="repeat; the homes they work in")
    p.add_argument("--language", choices=["fr", "en"], default="fr")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (default: prompt twice)",
    )
    staff.add_parser("list")
    p = staff.add_parser("assign", help="give a staff member access to a home")
    p.add_argument("--staff", required=True, help="id or email")
    p.add_argument("--home", required=True)
    p = staff.add_parser("pin", help="set the PIN that opens supervised calls on a tablet")
    p.add_argument("--staff", required=True, help="id or email")
    p.add_argument("--pin-stdin", action="store_true", help="read the PIN from stdin")
    p = staff.add_parser("password", help="set a new password (ends their sessions)")
    p.add_argument("--staff", required=True, help="id or email")
    p.add_argument("--password-stdin", action="store_true")
    p = staff.add_parser("disable", help="no more logins; open sessions end now")
    p.add_argument("--staff", required=True, help="id or email")

    audit = objects.add_parser("audit").add_subparsers(dest="action", required=True)
    p = audit.add_parser("list")
    p.add_argument("--limit", type=int, default=50)
    admin_privacy.add_objects(objects)


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def run(args: argparse.Namespace) -> int:
    from backend.db import Database
    from backend.services.errors import ServiceError
    from backend.settings import get_settings
    from liens.cli import default_actor

    settings = get_settings()
    db = Database(settings.database_url)
    db.migrate()
    by = args.by or default_actor()
    try:
        result = _dispatch(args, db=db, settings=settings, by=by)
    except ServiceError as exc:
        _out({"error": str(exc)})
        return 1
    finally:
        db.engine.dispose()
    _out(result)
    return 0


def applied(settings: Any, db: Any, result: dict[str, Any], consequences: Any) -> dict[str, Any]:
    """After the commit: ``result`` with what the apply step did (``"applied"``)."""
    from backend.apply import apply_from_another_process

    done = apply_from_another_process(settings, db, consequences)
    return {**result, "published_to": done.published, "applied": done.summary()}


def _dispatch(args: argparse.Namespace, *, db: Any, settings: Any, by: str) -> Any:
    from backend.models import Approval, AuditEntry, Contact, Home, Resident, Tablet
    from backend.services import decisions, directory, staff_actions
    from backend.services import tablets as tablet_service

    privacy = admin_privacy.dispatch(args, db=db, settings=settings, by=by)
    if privacy is not admin_privacy.NOT_MINE:
        return privacy
    obj, action = args.object, getattr(args, "action", None)
    ttl = timedelta(hours=getattr(args, "ttl_hours", None) or settings.enrolment_code_ttl_hours)

    def done(result: dict[str, Any], consequences: Any = decisions.NOTHING) -> dict[str, Any]:
        return applied(settings, db, result, consequences)

    if obj == "home" and action == "add":
        with db.session() as s:
            home = directory.add_home(session=s, name=args.name, timezone=args.timezone, by=by)
            result = home_json(home)
        return done(result)
    if obj == "home" and action == "list":
        with db.session() as s:
            return [home_json(h) for h in s.scalars(select(Home).order_by(Home.name))]

    if obj == "resident" and action == "add":
        with db.session() as s:
            resident = directory.add_resident(
                session=s,
                home_id=args.home,
                first_name=args.first_name,
                last_name=args.last_name,
                kind=args.kind,
                language=args.language,
                by=by,
            )
            changed = decisions.residents_changed(s, [resident.id])
            result = resident_json(resident)
        return done(result, changed)
    if obj == "resident" and action == "list":
        with db.session() as s:
            q_resident = select(Resident).order_by(Resident.created_at)
            if args.home:
                q_resident = q_resident.where(Resident.home_id == args.home)
            return [resident_json(r) for r in s.scalars(q_resident)]

    if obj == "contact" and action == "add":
        with db.session() as s:
            contact = directory.add_contact(
                session=s,
                home_id=args.home,
                display_name=args.name,
                relation=args.relation,
                email=args.email,
                by=by,
            )
            result = contact_json(contact, settings.public_url)
        return done(result)  # on no tablet until approved
    if obj == "contact" and action == "list":
        with db.session() as s:
            q_contact = select(Contact).order_by(Contact.created_at)
            if args.home:
                q_contact = q_contact.where(Contact.home_id == args.home)
            return [contact_json(c, settings.public_url) for c in s.scalars(q_contact)]

    if obj in ("approve", "revoke"):
        with db.session() as s:
            if obj == "approve":
                approval, changed = staff_actions.approve_pair(
                    session=s,
                    resident_id=args.resident,
                    contact_id=args.contact,
                    policy=_policy_arg(args.policy),
                    by=by,
                )
            else:
                approval, changed = staff_actions.revoke_pair(
                    session=s,
                    resident_id=args.resident,
                    contact_id=args.contact,
                    reason=args.reason,
                    by=by,
                )
            result = approval_json(approval)
        return done(result, changed)
    if obj == "approval" and action == "list":
        with db.session() as s:
            q_approval = select(Approval).order_by(Approval.decided_at)
            if args.resident:
                q_approval = q_approval.where(Approval.resident_id == args.resident)
            return [approval_json(a) for a in s.scalars(q_approval)]

    if obj == "tablet" and action == "add":
        with db.session() as s:
            tablet = tablet_service.add_tablet(
                session=s, home_id=args.home, name=args.name, resident_ids=args.resident, by=by
            )
            code = tablet_service.issue_code(
                session=s, tablet_id=tablet.id, secret_key=settings.secret_key, ttl=ttl, by=by
            )
            result = {
                **tablet_json(tablet),
                "enrolment_code": code.code,
                "expires_at": code.expires_at,
                "server_url": settings.public_url,
            }
        return done(result)  # not enrolled yet: nothing on the broker
    if obj == "tablet" and action == "code":
        with db.session() as s:
            code = tablet_service.issue_code(
                session=s, tablet_id=args.tablet, secret_key=settings.secret_key, ttl=ttl, by=by
            )
            result = {
                "tablet_id": code.tablet_id,
                "enrolment_code": code.code,
                "expires_at": code.expires_at,
                "server_url": settings.public_url,
            }
        return done(result)  # the tablet keeps its account until it enrols again
    if obj == "tablet" and action == "retire":
        with db.session() as s:
            changed = staff_actions.retire_tablet(session=s, tablet_id=args.tablet, by=by)
            result = tablet_json(tablet_service.get_tablet(s, args.tablet))
        return done(result, changed)
    if obj == "tablet" and action == "list":
        with db.session() as s:
            q_tablet = select(Tablet).order_by(Tablet.created_at)
            if args.home:
                q_tablet = q_tablet.where(Tablet.home_id == args.home)
            return [tablet_json(t) for t in s.scalars(q_tablet)]

    if obj == "staff":
        result, changed = _staff(args, db=db, by=by)
        return done(result, changed) if action != "list" else result

    if obj == "audit" and action == "list":
        with db.session() as s:
            q_auditentry = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(args.limit)
            return [
                {
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "target_type": e.target_type,
                    "target_id": e.target_id,
                    "home_id": e.home_id,
                    "details": e.details,
                }
                for e in s.scalars(q_auditentry)
            ]
    raise SystemExit(f"unknown command: {obj} {action}")


def _secret(*, from_stdin: bool, what: str) -> str:
    """A password or PIN from stdin's first line, or typed twice without echo; never an argument."""
    from backend.services.errors import ServiceError

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass(f"{what}: ")
    if getpass.getpass(f"{what} (again): ") != first:
        raise ServiceError(f"The two {what.lower()}s differ.")
    return first


def _staff(args: argparse.Namespace, *, db: Any, by: str) -> tuple[Any, Any]:
    """(what to print, the change's consequences) of a ``staff`` command."""
    from backend.auth import accounts
    from backend.models import Staff
    from backend.services import decisions

    action = args.action
    with db.session() as s:
        if action == "add":
            password = _secret(from_stdin=args.password_stdin, what="Password")
            staff = accounts.add_staff(
                session=s,
                email=args.email,
                name=args.name,
                password=password,
                role=args.role,
                home_ids=args.home,
                language=args.language,
                by=by,
            )
            return accounts.staff_json(staff), decisions.NOTHING  # no PIN yet
        if action == "list":
            members = s.scalars(select(Staff).order_by(Staff.email))
            return [accounts.staff_json(m) for m in members], decisions.NOTHING
        staff = accounts.find_staff(s, args.staff)
        if action == "assign":
            changed = accounts.assign_home(session=s, staff=staff, home_id=args.home, by=by)
        elif action == "pin":
            pin = _secret(from_stdin=args.pin_stdin, what="PIN")
            changed = accounts.set_pin(session=s, staff=staff, pin=pin, by=by)
        elif action == "password":
            password = _secret(from_stdin=args.password_stdin, what="Password")
            changed = accounts.set_password(session=s, staff=staff, password=password, by=by)
        elif action == "disable":
            changed = accounts.disable(session=s, staff=staff, by=by)
        else:
            raise SystemExit(f"unknown command: staff {action}")
        return accounts.staff_json(staff), changed


def _policy_arg(text: str | None) -> dict[str, Any] | None:
    from backend.services.errors import ServiceError

    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ServiceError(f"--policy is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ServiceError("--policy must be a JSON object")
    return value


def home_json(home: Any) -> dict[str, Any]:
    return {"id": home.id, "name": home.name, "timezone": home.timezone}


def resident_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "home_id": r.home_id,
        "first_name": r.first_name,
        "last_name": r.last_name,
        "kind": r.kind,
        "language": r.language,
    }


def contact_json(c: Any, public_url: str) -> dict[str, Any]:
    from backend.services.directory import personal_link

    return {
        "id": c.id,
        "home_id": c.home_id,
        "name": c.display_name,
        "relation": c.relation,
        "personal_link": personal_link(public_url, c),
        "link_active": c.link_active,
    }


def approval_json(a: Any) -> dict[str, Any]:
    return {
        "id": a.id,
        "resident_id": a.resident_id,
        "contact_id": a.contact_id,
        "policy": a.policy,
        "status": a.status,
        "decided_by": a.decided_by,
        "decided_at": a.decided_at.isoformat(),
    }


def tablet_json(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "home_id": t.home_id,
        "name": t.name,
        "enrolled": t.enrolled_at is not None,
        "retired": t.retired_at is not None,
        "online": t.online,
        "last_seen": t.last_seen.isoformat() if t.last_seen else None,
        "app_version": t.app_version,
    }
