"""Authentication: password hashing, sessions, bearer tokens and roles."""
