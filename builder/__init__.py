"""llamaws builder: the app's dependency set, the UI build (see docs/architecture.md)."""
