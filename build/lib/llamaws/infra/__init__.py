"""llamaws infra (see DESIGN.md)."""
