"""The Sweep dialog and the sweep queue view."""
