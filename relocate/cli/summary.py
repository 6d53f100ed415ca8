"""What ``relocate import`` prints while it runs and when it ends."""

from __future__ import annotations

from typing import Any, TextIO

from relocate.cli.terminal import terminal_safe


def summary_line(summary: Any, seconds: float, import_uuid: str, report_file: str | None) -> str:
    """The one line that ends an import: what it wrote, how fast, what it left out, where
    the details are and what to do next."""
    t = summary.total
    rows = t.inserted + t.existing + t.overwritten
    rate = f"{rows / seconds:,.0f}" if seconds > 0 else "-"
    report = (
        f"report: {terminal_safe(report_file)}"
        if report_file
        else "rerun with --report-file to keep the details"
    )
    if summary.findings:
        return (
            f"Import {import_uuid} failed after {seconds:.1f} s with "
            f"{len(summary.findings):,} finding(s); {rows:,} rows of it are in the target; "
            f"{t.skipped:,} skipped, {t.dropped:,} dropped; {report}. Fix the cause and "
            f"rerun with --import-uuid {import_uuid} to resume, or remove what it wrote with "
            f"`relocate rollback --import-uuid {import_uuid}`."
        )
    return (
        f"Imported {rows:,} rows in {seconds:.1f} s ({rate} rows/s); {t.skipped:,} skipped, "
        f"{t.dropped:,} dropped; {report}. Undo it with "
        f"`relocate rollback --import-uuid {import_uuid}`."
    )


def print_summary(summary: Any, out: TextIO) -> None:
    header = ("model", "read", "inserted", "existing", "overwritten", "skipped", "dropped")
    rows = [
        (terminal_safe(name), m.read, m.inserted, m.existing, m.overwritten, m.skipped, m.dropped)
        for name, m in sorted(summary.models.items())
    ]
    t = summary.total
    rows.append(("total", t.read, t.inserted, t.existing, t.overwritten, t.skipped, t.dropped))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        if i == len(rows):
            print("  ".join("-" * w for w in widths), file=out)
        print(
            "  ".join(
                str(v).ljust(w) if j == 0 else str(v).rjust(w)
                for j, (v, w) in enumerate(zip(row, widths))
            ),
            file=out,
        )


def print_skips(summary: Any, out: TextIO) -> None:
    reasons: dict[tuple[str, str, str], int] = {}
    for entry in summary.report:
        if entry["action"] in ("skipped", "dropped"):
            key = (entry["action"], entry["model"], entry["reason"])
            reasons[key] = reasons.get(key, 0) + 1
    if not reasons:
        return
    print("Rows not imported:", file=out)
    for (action, model, reason), n in sorted(reasons.items()):
        print(f"  {n:>7,} {action} {terminal_safe(model)}: {terminal_safe(reason)}", file=out)


def format_finding(f: dict) -> str:
    """A finding as Sentry prints it, its model and reason escaped for the terminal."""
    return (
        f"RpcImportError(\n    kind: {f['kind']},\n    on: InstanceID(model: "
        f"'{terminal_safe(f['on']['model'])}', ordinal: {f['on']['ordinal']}),\n    left_pk: "
        f"{f['left_pk']},\n    reason: {terminal_safe(f['reason'])}\n)"
    )


#: Findings raised before any write (reading and validation); any other kind comes from a
#: stage's write.
PRE_WRITE_KINDS = frozenset({"ValidationError", "DeserializationFailed"})


def describe_failure(summary: Any, registry: Any, import_uuid: str, is_global: bool) -> str:
    """What a failed import left in the target, read from its ledger, and what to do next.

    A finding before the writes leaves nothing. A write that fails rolls back its own batch
    (one transaction), but the stage's other batches, and every earlier stage, stay
    committed: they are named here per stage and model.
    """
    held: dict[int, list[str]] = {}
    total = 0
    for name, m in sorted(summary.models.items()):
        rows = m.inserted + m.existing + m.overwritten
        if not rows:
            continue
        total += rows
        info = registry.get(name)
        extra = [
            f"{n} {what}"
            for n, what in ((m.existing, "existing"), (m.overwritten, "overwritten"))
            if n
        ]
        held.setdefault(info.stage if info else 0, []).append(
            f"{name} {rows}" + (f" ({', '.join(extra)})" if extra else "")
        )
    written = any(f["kind"] not in PRE_WRITE_KINDS for f in summary.findings)
    failed = sorted(
        {
            f"stage {info.stage} ({f['on']['model']})"
            for f in summary.findings
            if f["kind"] not in PRE_WRITE_KINDS and (info := registry.get(f["on"]["model"]))
        }
    )
    # A Global import wipes the target before stage 1 and commits it (Sentry's monolith
    # import wipes and writes in one transaction, so its failure leaves the target as it
    # was): once the wipe ran, the old contents are back only from a backup.
    restore = (
        " To get the target's previous contents back, restore the database from a backup:"
        f" `relocate rollback --import-uuid {import_uuid}` removes this import's rows but"
        " cannot bring back what the wipe deleted."
    )
    if not total:
        wiped = (
            " The target was wiped: the Global wipe emptied its tables before stage 1, and"
            " that is committed."
            if is_global and written
            else ""
        )
        what = "Nothing was written" if not wiped else "No row was written"
        return (
            f"Import failed. {what}: the target holds no row of import {import_uuid}.{wiped}"
            " Fix the cause and run the import again." + (restore if wiped else "")
        )
    stages = "; ".join(f"stage {s}: {', '.join(models)}" for s, models in sorted(held.items()))
    where = (
        f" The write of {', '.join(failed)} failed: that batch was rolled back." if failed else ""
    )
    if is_global:
        return (
            f"Import failed.{where} The target was wiped: the Global wipe emptied its tables "
            f"before stage 1, and that is committed (Sentry's own import would have left the "
            f"target as it was). It now holds {total} rows of import {import_uuid} (with the "
            f"rows created beside them), committed before the failure: {stages}. To finish "
            f"the import, fix the cause and rerun with --import-uuid {import_uuid} (the wipe "
            f"is not repeated; only what is missing is written)." + restore
        )
    return (
        f"Import failed.{where} The target holds {total} rows of import {import_uuid} "
        f"(with the rows created beside them), committed before the failure: {stages}. "
        f"Fix the cause and rerun with --import-uuid {import_uuid} to resume (only what is "
        f"missing is written), or remove them with "
        f"`relocate rollback --import-uuid {import_uuid}`."
    )


#: What the target must run after an import that wrote query subscriptions.
SUBSCRIPTIONS_NOTE = (
    "Note: {n} query subscription(s) were imported as Sentry imports them: in status "
    "CREATING, not yet registered with Snuba, so their metric alerts do not fire yet. "
    "Sentry's subscription_checker task (Celery beat entry snuba-subscription-checker, every "
    "20 minutes) registers those left in CREATING for more than 10 minutes: keep "
    "`sentry run cron` and a `sentry run worker` that consumes the `subscriptions` queue "
    "running on the target."
)


def print_followups(summary: Any, out: TextIO) -> None:
    """What the operator has to do on the target after this import, if anything."""
    subscriptions = summary.models.get("sentry.querysubscription")
    if subscriptions is not None and subscriptions.inserted:
        print(SUBSCRIPTIONS_NOTE.format(n=subscriptions.inserted), file=out)
