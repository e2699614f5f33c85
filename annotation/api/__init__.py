"""The REST API (`/api/v1/`): token or session authenticated, every queryset scoped to the caller."""
