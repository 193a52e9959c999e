"""llamaws builder (see DESIGN.md)."""
