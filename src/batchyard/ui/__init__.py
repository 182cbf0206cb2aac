"""The web dashboard (`/ui`)."""
