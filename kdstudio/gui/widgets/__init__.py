"""widgets view."""
