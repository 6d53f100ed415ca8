"""The import logic as plain functions: admission, conversion, values, settings and
Sentry's per-model rules. Nothing here knows about Beam."""
