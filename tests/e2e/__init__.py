"""E2E tests against a real docker compose stack."""
