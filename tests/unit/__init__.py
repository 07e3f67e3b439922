"""Pure unit tests of the attribution core (no server, no database)."""
