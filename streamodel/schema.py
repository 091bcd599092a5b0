"""``Model.Schema``: the marshmallow schema of a model, for JSON and validation.

``Model.Schema().dump(obj)`` gives a plain JSON-safe dict keyed by the columns' Python
names; ``Model.Schema().load(data)`` validates such a dict and returns a model object.
Failures raise :class:`streamodel.ValidationError` (a ``marshmallow.ValidationError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from streamodel._marshmallow import marshmallow
from streamodel.exceptions import ValidationError

if TYPE_CHECKING:
    from streamodel.columns import Column
    from streamodel.models import BaseModel

__all__ = ["ModelSchema", "build_schema", "check_values"]


class ModelSchema(marshmallow.Schema):
    """Base of every ``Model.Schema``; ``model`` is the model class it builds."""

    model: Any = None

    def handle_error(
        self, error: marshmallow.ValidationError, data: Any, *, many: bool, **kwargs: Any
    ) -> None:
        raise ValidationError(
            error.messages, data=error.data, valid_data=error.valid_data
        ) from error

    @marshmallow.post_load
    def _make_object(self, data: dict[str, Any], **kwargs: Any) -> Any:
        return self.model(**data)


def build_schema(model: type[BaseModel], columns: Iterable[Column]) -> type[ModelSchema]:
    """A schema class for ``model`` with one field per column (the column's own type)."""
    attrs: dict[str, Any] = {column.name: column.type for column in columns}
    attrs["model"] = model
    attrs["__module__"] = model.__module__
    # Not in marshmallow's global class registry, which would keep every model ever declared
    # (a test's too) alive, and with it its place among a table's entities.
    attrs["Meta"] = type("Meta", (), {"register": False})
    return type(f"{model.__name__}Schema", (ModelSchema,), attrs)


def check_values(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate Python values for the named columns of ``model``; return them normalized.

    Raises one :class:`ValidationError` listing every bad column, before anything is sent.
    """
    columns = model.Meta.columns_by_name  # type: ignore[attr-defined]
    errors: dict[str, Any] = {}
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            checked[name] = None
            continue
        try:
            checked[name] = columns[name].type.check(value)
        except marshmallow.ValidationError as error:
            errors[name] = error.messages
    if errors:
        raise ValidationError(errors, data=dict(values), valid_data=checked)
    return checked
