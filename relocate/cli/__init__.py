"""The command line (``relocate ...``) and the Dataflow Flex Template's entry."""
