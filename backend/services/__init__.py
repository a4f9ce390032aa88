"""Service functions: keyword-only, one transaction given by the caller, every change audited."""
