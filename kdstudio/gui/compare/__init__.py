"""compare view."""
