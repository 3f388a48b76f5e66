"""setup view."""
