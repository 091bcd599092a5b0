"""Every signal streamodel sends, as blinker signals.

Each is sent with ``sender=`` the model class, so ``object_saved.connect(fn, sender=Account)``
receives only Account events. Receivers get keyword arguments; ``engine`` and ``obj`` are
always there where an engine and an object exist.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "before_delete",
    "before_save",
    "change_received",
    "model_bound",
    "object_deleted",
    "object_loaded",
    "object_modified",
    "object_saved",
]

_signals = Namespace()

model_bound = _signals.signal(
    "model_bound",
    doc="Sent after ``Engine.bind`` set a model's table up. kwargs: ``engine``, ``model``.",
)
before_save = _signals.signal(
    "before_save",
    doc=(
        "Sent before each object's write is sent; raising aborts that save and nothing is "
        "written. kwargs: ``engine``, ``obj``, ``diff`` (column name -> (old, new))."
    ),
)
object_saved = _signals.signal(
    "object_saved",
    doc="Sent after each successful write. kwargs: ``engine``, ``obj``, ``diff``.",
)
before_delete = _signals.signal(
    "before_delete",
    doc="Sent before each delete is sent; raising aborts it. kwargs: ``engine``, ``obj``.",
)
object_deleted = _signals.signal(
    "object_deleted",
    doc="Sent after each successful delete. kwargs: ``engine``, ``obj``.",
)
object_loaded = _signals.signal(
    "object_loaded",
    doc=(
        "Sent after an object is filled from DynamoDB (load, query, scan, transaction). "
        "kwargs: ``engine``, ``obj``."
    ),
)
object_modified = _signals.signal(
    "object_modified",
    doc=(
        "Sent when a column value is set or deleted on an object. kwargs: ``obj``, "
        "``column``, ``value`` (``None`` for a delete)."
    ),
)
change_received = _signals.signal(
    "change_received",
    doc="Sent when a stream reader or worker delivers a change. kwargs: ``change``.",
)
