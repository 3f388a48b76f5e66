"""run view."""
