"""The resident's home screen."""
