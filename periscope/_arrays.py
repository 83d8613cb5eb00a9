"""Input preparation shared by every public numerical wrapper.

A wrapper validates its arguments, broadcasts them against one another, casts them to contiguous
float64 (flags to bool), ravels them for the kernel, and reshapes the kernel's flat output back to
the broadcast shape. Whole-call problems raise :class:`~periscope.errors.InvalidInputError` naming
the offending argument; per-element problems (NaN, negative volatility) are the kernel's to
report as NaN plus a status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from periscope.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NUMERIC_KINDS = frozenset("biuf")


@dataclass(frozen=True, slots=True)
class PreparedInputs:
    """Flat, contiguous kernel inputs and the shape to give the outputs back."""

    shape: tuple[int, ...]
    floats: dict[str, FloatArray]
    flags: dict[str, BoolArray]

    def reshape(self, flat: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        """Give a flat kernel output the broadcast shape of the inputs."""
        return flat.reshape(self.shape)


def _as_array(name: str, value: npt.ArrayLike) -> npt.NDArray[np.generic]:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} is not array-like: {exc}", argument=name) from exc
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise InvalidInputError(
            f"{name} must be real numbers, got dtype {array.dtype}", argument=name
        )
    return array


def prepare_inputs(
    floats: Mapping[str, npt.ArrayLike],
    flags: Mapping[str, npt.ArrayLike] | None = None,
) -> PreparedInputs:
    """Validate, broadcast and flatten the arguments of one numerical call.

    Parameters
    ----------
    floats
        Real-valued arguments by public name (``spot``, ``strike``...). Cast to float64.
    flags
        Boolean arguments by public name (``is_call``). Booleans or the integers 0 and 1.

    Raises
    ------
    InvalidInputError
        An argument is not numeric, a flag is not 0/1, or an argument's shape does not broadcast
        against the arguments before it. The message names the argument.
    """
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for name, value in floats.items():
        arrays[name] = _as_array(name, value)
    flag_arrays: dict[str, npt.NDArray[np.generic]] = {}
    for name, value in (flags or {}).items():
        array = _as_array(name, value)
        if array.dtype.kind != "b":
            if array.dtype.kind == "f" and np.isnan(array).any():
                raise InvalidInputError(f"{name} must be boolean, got NaN", argument=name)
            if not np.isin(array, (0, 1)).all():
                raise InvalidInputError(
                    f"{name} must be boolean (True/False or 1/0)", argument=name
                )
        flag_arrays[name] = array

    shape: tuple[int, ...] = ()
    for name, array in (arrays | flag_arrays).items():
        try:
            shape = np.broadcast_shapes(shape, array.shape)
        except ValueError as exc:
            raise InvalidInputError(
                f"{name} has shape {array.shape}, which does not broadcast with the other "
                f"arguments' shape {shape}",
                argument=name,
            ) from exc

    size = int(np.prod(shape, dtype=np.int64))
    flat_floats = {name: _flatten(array, shape, size, np.float64) for name, array in arrays.items()}
    flat_flags = {
        name: _flatten(array, shape, size, np.bool_) for name, array in flag_arrays.items()
    }
    return PreparedInputs(shape=shape, floats=flat_floats, flags=flat_flags)


def _flatten[T: np.generic](
    array: npt.NDArray[np.generic], shape: tuple[int, ...], size: int, dtype: type[T]
) -> npt.NDArray[T]:
    """A contiguous, writeable, flat ``dtype`` copy or view of ``array`` broadcast to ``shape``.

    Writeable matters: numba compiles a separate specialization for read-only arrays, so the
    read-only views ``np.broadcast_to`` returns would double every kernel's compile time.
    """
    if array.shape != shape:
        array = np.broadcast_to(array, shape)
    flat = np.ascontiguousarray(array, dtype=dtype).reshape(size)
    return flat if flat.flags.writeable else flat.copy()
