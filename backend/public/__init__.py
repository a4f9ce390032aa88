"""Pages anyone may open without an account: a home's public request page."""
