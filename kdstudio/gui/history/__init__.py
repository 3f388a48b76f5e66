"""history view."""
