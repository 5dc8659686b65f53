"""The interpreter's cyclic garbage collector, set for a broker process (``kbroker serve``).

CPython frees most objects by reference counting; its cyclic collector runs besides, by generations, and
each collection of a generation examines every container object in it (and the younger ones): a full
collection (generation 2) examines all of them, and holds the event loop while it does. A full collection
runs once the objects that reached generation 2 since the last one are a quarter of those that were there
then, so a broker that grows (a topic of 10,000 partitions: a few hundred thousand new objects) runs several
while it grows, each longer than the one before; they were the longest stalls another client saw while such
a topic was created.

Much of what such a collection examines never changes: the modules, classes and functions loaded at
start-up, which live as long as the process. ``freeze_start_up`` moves them to the permanent generation
(``gc.freeze``), which no collection examines, so that every collection from then on is shorter by that
much. That is what CPython's documentation advises for a long-running process (collect first, so that
nothing freed meanwhile is kept), and what servers that fork workers do before forking (Instagram's
Django). A frozen object is still freed when its last reference goes; only a cycle among frozen objects
would never be collected, so the freeze happens before the broker opens its data (topics, logs, groups,
connections come and go): what it freezes is the code, loaded once and never freed.

The generations' thresholds stay CPython's: larger ones make collections rarer but each young collection
longer, and the longest stall is what matters here.

Only ``kbroker serve`` freezes: a broker embedded in another program (embedded.py, the pytest plugin)
leaves that program's collector as it is.
"""

from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect what start-up left as garbage, then move every object alive now to the permanent
    generation; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
