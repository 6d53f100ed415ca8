"""The target database: the sink, the ledger, the catalog, DDL, wipe, finish, rollback,
connections and their cap, credentials, and the embedded local server."""
