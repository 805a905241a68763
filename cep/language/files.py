"""Writing a file whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any, Union

PathLike = Union[str, "os.PathLike[str]"]


def replace_file(path: PathLike, write: Callable[[IO[Any]], None], *, binary: bool = False,
                 private: bool = False) -> None:
    """Write a new file next to `path` with `write`, then rename it over `path`.

    A failed write (a full disk, an exception) leaves the old file as it was, and a reader
    never sees half a file. The new file gets the usual permissions (0666 less the umask),
    or, `private`, only the owner's (for files that are unpickled when read back).
    Text is UTF-8 with `\\n` line ends.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".cep-")
    try:
        with (os.fdopen(handle, "wb") if binary
              else os.fdopen(handle, "w", encoding="utf-8", newline="\n")) as out:
            write(out)
        if not private:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; single-threaded callers put it back at once
    os.umask(mask)
    return mask
