"""DDL of relocate's own bookkeeping tables, created beside Sentry's tables.

* ``relocate_pk_map``: the pk-map ledger. One row per imported source row, keyed by
  (import_uuid, model, old_pk), claimed in the same transaction as the row's write: the
  claim is what makes a retried or concurrent batch write nothing twice. ``kind`` is
  Sentry's ImportKind (Inserted, Existing, Overwrite); ``previous`` keeps the overwritten
  row's old values so an import can be rolled back; ``changes`` the columns Sentry's
  rules changed on purpose (renamed, regenerated) and why, never a secret value.
* ``relocate_report``: every row an import skipped or dropped, and every finding, with
  the reason. Keyed by run so that a resumed import reports its own run.
* ``relocate_import``: one row per import (scope, flags, status), for resume and rollback.
  An import UUID is bound to its scope, its flags and ``source_digest`` (the export's
  digest, ``relocate.io.digest``): a rerun under it must match them. ``wiped_by``,
  ``wiped_at`` and ``wiped_rows`` record a Global wipe that deleted the import's rows
  (``relocate.db.imports``).
* ``relocate_side_effect``: rows an import created that are not rows of the export
  (primary user emails, lost-password hashes, slug reservations, mappings), so that a
  rollback removes them too.
* ``relocate_progress``: what an import's steps have done so far, appended as they go
  (``relocate.db.progress``): bytes and rows read, rows validated per stage, rows written
  per batch (inside the batch's transaction). Append-only, so parallel writers never
  contend on a counter row; its sums are what the progress display and ``relocate
  status`` show.
* ``relocate_username_claim``: empty at rest. A batch of users inserts the lower-cased
  names it checks and deletes them again before it commits: a concurrent batch checking
  one of the same names waits on that row until the first commits, then sees its users.
  Per-name waits, where PostgreSQL has no unique index on ``lower(username)`` to give them.
"""

from __future__ import annotations

LEDGER_TABLES = (
    "relocate_pk_map",
    "relocate_report",
    "relocate_import",
    "relocate_side_effect",
    "relocate_progress",
    "relocate_username_claim",
)

LEDGER_DDL: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS relocate_import (
        import_uuid uuid PRIMARY KEY,
        scope text NOT NULL,
        flags jsonb NOT NULL DEFAULT '{}'::jsonb,
        status text NOT NULL DEFAULT 'running',
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        source_digest text,
        wiped_by uuid,
        wiped_at timestamptz,
        wiped_rows bigint
    )
    """,
    # Targets made by an earlier relocate lack these columns. Checked first: ALTER TABLE
    # takes an ACCESS EXCLUSIVE lock even when the column exists.
    """
    DO $$
    DECLARE
        col text[];
    BEGIN
        FOREACH col SLICE 1 IN ARRAY ARRAY[['source_digest', 'text'], ['wiped_by', 'uuid'],
                                           ['wiped_at', 'timestamptz'], ['wiped_rows', 'bigint']]
        LOOP
            IF NOT EXISTS (
                SELECT 1 FROM pg_attribute
                WHERE attrelid = 'relocate_import'::regclass AND attname = col[1]
                  AND NOT attisdropped
            ) THEN
                EXECUTE format('ALTER TABLE relocate_import ADD COLUMN IF NOT EXISTS %I %s',
                               col[1], col[2]);
            END IF;
        END LOOP;
    END
    $$
    """,
    """
    CREATE TABLE IF NOT EXISTS relocate_pk_map (
        import_uuid uuid NOT NULL,
        model text NOT NULL,
        old_pk bigint NOT NULL,
        new_pk bigint NOT NULL,
        kind text NOT NULL,
        slug text,
        ordinal bigint NOT NULL,
        stage integer NOT NULL,
        previous jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        changes jsonb,
        PRIMARY KEY (import_uuid, model, old_pk)
    )
    """,
    # Ledgers made by an earlier relocate lack `changes` (checked first, as above).
    """
    DO $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM pg_attribute
            WHERE attrelid = 'relocate_pk_map'::regclass AND attname = 'changes'
              AND NOT attisdropped
        ) THEN
            ALTER TABLE relocate_pk_map ADD COLUMN IF NOT EXISTS changes jsonb;
        END IF;
    END
    $$
    """,
    # Overwritten rows by their target row: a rollback looks for later overwrites of the
    # rows it would restore or delete. Few rows (config rows); created only when missing,
    # as CREATE INDEX IF NOT EXISTS would lock the ledger against writes on every launch.
    """
    DO $$
    BEGIN
        IF to_regclass('relocate_pk_map_overwrites') IS NULL THEN
            CREATE INDEX IF NOT EXISTS relocate_pk_map_overwrites
                ON relocate_pk_map (model, new_pk) WHERE kind = 'Overwrite';
        END IF;
    END
    $$
    """,
    """
    CREATE TABLE IF NOT EXISTS relocate_report (
        run_id uuid NOT NULL,
        import_uuid uuid NOT NULL,
        model text NOT NULL,
        ordinal bigint NOT NULL,
        source_pk text,
        action text NOT NULL,
        reason text NOT NULL,
        finding_kind text,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, model, ordinal, action)
    )
    """,
    "CREATE INDEX IF NOT EXISTS relocate_report_import ON relocate_report (import_uuid)",
    """
    CREATE TABLE IF NOT EXISTS relocate_side_effect (
        import_uuid uuid NOT NULL,
        table_name text NOT NULL,
        row_id bigint NOT NULL,
        PRIMARY KEY (import_uuid, table_name, row_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS relocate_progress (
        import_uuid uuid NOT NULL,
        run_id uuid NOT NULL,
        stage integer NOT NULL DEFAULT 0,
        model text,
        kind text NOT NULL,
        rows bigint NOT NULL DEFAULT 0,
        bytes bigint NOT NULL DEFAULT 0,
        at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    # Created only when missing, as above: running imports append to the table.
    """
    DO $$
    BEGIN
        IF to_regclass('relocate_progress_import') IS NULL THEN
            CREATE INDEX IF NOT EXISTS relocate_progress_import
                ON relocate_progress (import_uuid);
        END IF;
    END
    $$
    """,
    "CREATE TABLE IF NOT EXISTS relocate_username_claim (key text PRIMARY KEY)",
)
