"""End-to-end tests against a real Keycloak (issue 5); see conftest.py and tests/keycloak/README.md."""
