"""The base class of every generated message and struct class."""

from __future__ import annotations

_new = object.__new__


class Message:
    """A plain record with ``__slots__``: equality and repr come from the slots."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__qualname__}({inner})"

    def to_dict(self) -> dict:
        """Plain data, for logs and the inspection API."""

        def conv(v):
            if isinstance(v, Message):
                return v.to_dict()
            if isinstance(v, list):
                return [conv(x) for x in v]
            if isinstance(v, memoryview):
                return bytes(v)
            return v

        return {n: conv(getattr(self, n)) for n in self.__slots__}
