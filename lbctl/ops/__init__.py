"""Use cases. Each takes a Context and returns a models.Result; none prints."""
