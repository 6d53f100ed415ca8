"""The Beam layer: the import pipeline and its transforms, thin over ``relocate.logic``
and ``relocate.db``."""
