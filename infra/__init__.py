"""llamaws infra: the CDK app (see docs/architecture.md)."""
