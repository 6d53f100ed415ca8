"""Large read-only values that DoFns carry: pickled once per launch, unpickled once per
process.

Beam pickles every DoFn on its own (cloudpickle, then bz2) when the graph is built and
again when it is translated, and unpickles it for every bundle processor. The registry,
the table layouts and the constraint plans are about 110 KB pickled and ride in most
DoFns: that pickling was about half of a tiny import's 1.5 s. A value made shippable here
pickles as one zlib-compressed blob, made once per object, and a process turns a given
blob back into the value once (``_unship``): every DoFn carrying the same bytes then
shares one read-only value.

The registry committed with the package ships as a reference to it instead
(``Registry.__reduce__``): every worker runs the launcher's package.

The cache is content-addressed, not state a DoFn relies on: a process that has not seen
a blob builds the value from it.
"""

from __future__ import annotations

import functools
import pickle
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def ship(obj: Any, factory: Callable[..., Any], args: tuple) -> tuple[Any, tuple[bytes]]:
    """What ``obj.__reduce__`` returns to pickle as ``factory(*args)`` through one blob.

    The blob is kept on the object (``_shipped``), so a value is compressed once however
    many DoFns carry it. The object must not change after it was first pickled.
    """
    blob = obj.__dict__.get("_shipped")
    if blob is None:
        blob = zlib.compress(pickle.dumps((factory, args), protocol=pickle.HIGHEST_PROTOCOL))
        obj.__dict__["_shipped"] = blob
    return (_unship, (blob,))


@functools.lru_cache(maxsize=64)
def _unship(blob: bytes) -> Any:
    factory, args = pickle.loads(zlib.decompress(blob))
    return factory(*args)


class ShippedDict(dict[K, V]):
    """A dict that is read-only once built, shipped as one blob (see the module)."""

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:  # type: ignore[override]
        return ship(self, ShippedDict, (dict(self),))
