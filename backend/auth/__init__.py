"""Staff accounts: argon2 passwords and PINs, server-side sessions, CSRF, the login page.

The dashboard's routes depend on :mod:`backend.auth.deps` (``CurrentStaff``, ``AdminStaff``,
``CsrfChecked``, ``home_for``); nothing else of this package needs to be known to them.
"""
