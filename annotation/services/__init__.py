"""Services: the business rules that write. Keyword-only, typed, `<entity>_<action>`."""
