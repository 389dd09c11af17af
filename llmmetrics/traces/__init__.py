"""``llmmetrics traces``: the trace records as a queryable store, on the local JSONL files or on Loki.

Modules follow the question's path: :mod:`.filters` (one typed query), :mod:`.local` (scan the JSONL files,
with the byte-level tests of :mod:`.rawjson`) or :mod:`.logql` + :mod:`.loki_client` (ask Loki), then
:mod:`.aggregate` / :mod:`.render` (answer), and :mod:`.cli` (the subcommand, registered with
``add_command(subparsers)``).
"""
