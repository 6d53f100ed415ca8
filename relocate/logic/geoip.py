"""Country and region codes of IP addresses from a MaxMind-format database.

Sentry recomputes ``sentry.userip`` country/region codes on import from its GeoIP
database (``GEOIP_PATH_MMDB``); relocate takes the same file with ``--geoip-db``. Without
one, both codes are null, as in Sentry without a GeoIP database.
"""

from __future__ import annotations

from typing import Any


class GeoIp:
    """Looks up (country code, region code) for an IP address.

    Args:
        path: a MaxMind DB file (GeoIP2/GeoLite2 City or Country layout), or None.
    """

    def __init__(self, path: str | None) -> None:
        self._reader: Any = None
        if path:
            import maxminddb

            self._reader = maxminddb.open_database(path)

    def lookup(self, ip: str | None) -> tuple[str | None, str | None]:
        if self._reader is None or not ip:
            return None, None
        try:
            record = self._reader.get(ip)
        except ValueError:
            return None, None
        if not isinstance(record, dict):
            return None, None
        country = (record.get("country") or {}).get("iso_code")
        subdivisions = record.get("subdivisions") or []
        region = subdivisions[0].get("iso_code") if subdivisions else None
        return country, region

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
