"""insight view."""
