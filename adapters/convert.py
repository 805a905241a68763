"""The value conversions the bus uses, which live with the engine (cep.runtime.convert)
because `cast(...)` in expressions converts the same way."""

from cep.runtime.convert import (
    MILLIS_ABOVE,
    TYPES,
    BadValue,
    converter,
    epoch_to_unix,
    iso_to_unix,
    make_to_timestamp,
    number_to_unix,
    show,
)

__all__ = ["MILLIS_ABOVE", "TYPES", "BadValue", "converter", "epoch_to_unix", "iso_to_unix",
           "make_to_timestamp", "number_to_unix", "show"]
