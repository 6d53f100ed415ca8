"""Values DoFns carry are pickled once per launch and unpickled once per process."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zlib

from apache_beam.internal import pickler

from relocate.schemas.registry import Registry
from relocate.schemas.shipped import ShippedDict


def test_a_shipped_dict_round_trips_and_is_compressed_once():
    value = ShippedDict({"a": (1, "x" * 1000), "b": None})
    first = pickle.dumps(value)
    blob = value.__dict__["_shipped"]
    assert pickle.dumps(value) == first
    assert value.__dict__["_shipped"] is blob  # not compressed again
    back = pickle.loads(first)
    assert back == {"a": (1, "x" * 1000), "b": None}
    assert isinstance(back, ShippedDict)
    assert len(first) < 200  # the blob is compressed


def test_one_process_shares_one_value_per_blob():
    value = ShippedDict({"k": [1, 2, 3]})
    data = pickle.dumps(value)
    assert pickle.loads(data) is pickle.loads(data)


def test_the_packaged_registry_ships_as_a_reference_to_the_package():
    registry = Registry.load()
    data = pickler.dumps(registry)
    assert len(data) < 300  # a reference, not the ~40 KB of models
    back = pickler.loads(data)
    assert back == registry and back.models == registry.models


def test_any_other_registry_ships_whole_as_one_blob():
    packaged = Registry.load()
    registry = Registry(models=packaged.models[:3], excluded=packaged.excluded)
    assert registry.by_name  # a cached lookup is not part of what ships
    back = pickler.loads(pickler.dumps(registry))
    assert back == registry and back.models == packaged.models[:3]
    factory, args = pickle.loads(zlib.decompress(registry.__dict__["_shipped"]))
    assert factory is Registry and args == (registry.models, registry.excluded)


def test_another_process_builds_the_value_from_the_bytes_alone(tmp_path):
    layouts = ShippedDict({"sentry.user": ("auth_user", 3)})
    path = tmp_path / "shipped.pickle"
    path.write_bytes(pickle.dumps((layouts, Registry.load())))
    code = (
        "import pickle, sys\n"
        f"layouts, registry = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "assert layouts == {'sentry.user': ('auth_user', 3)}, layouts\n"
        "assert registry['sentry.user'].table == 'auth_user'\n"
        "print(len(registry.models))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(Registry.load().models)
