"""Files that hold trace record content are private: created ``0600`` whatever the umask, never loosened.

Records carry prompts and answers, so every file llmmetrics writes with record content (the trace file and
its rotated backups, the Loki spool, anything else that holds a record) is opened through
:func:`open_private`. The rule, in one place:

- a file llmmetrics creates gets exactly ``mode`` (default ``0600``), whatever the process umask (a umask
  can only remove bits, and a umask such as ``0277`` would otherwise leave a file its owner cannot reopen);
- an existing regular file keeps only the bits of its mode that ``mode`` also allows: a file left
  ``0644`` by an older version or by hand becomes ``0600``, a file made tighter (``0400``) stays tighter;
  a mode is never loosened. Devices, pipes and terminals (``/dev/stdout``) are left alone.

``open_private`` has the signature of an ``opener`` for the built-in :func:`open`, so any writer can use it:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "report.html")
>>> with open(path, "w", opener=open_private) as f:
...     _ = f.write("<html>…</html>")
>>> oct(os.stat(path).st_mode & 0o777)
'0o600'
"""

from __future__ import annotations

import logging
import os
import stat

__all__ = ["PRIVATE_FILE_MODE", "open_private", "restrict_mode"]

log = logging.getLogger("llmmetrics")

#: Owner read and write, nobody else.
PRIVATE_FILE_MODE = 0o600


def open_private(path: str | os.PathLike[str], flags: int, mode: int = PRIVATE_FILE_MODE) -> int:
    """``os.open(path, flags)`` under the rule above; returns the descriptor.

    With ``os.O_CREAT`` a missing file is created with exactly ``mode``; an existing one is opened (``O_TRUNC``
    and ``O_APPEND`` apply as usual) and has the bits ``mode`` does not allow removed.
    """
    for _ in range(3):  # the file can vanish between the two opens (another process rotating it)
        if flags & os.O_CREAT:
            try:
                fd = os.open(path, flags | os.O_EXCL, mode)
            except FileExistsError:
                pass
            else:
                try:
                    os.chmod(fd, mode)  # the umask may have removed bits that mode asks for
                except BaseException:
                    os.close(fd)
                    raise
                return fd
        try:
            fd = os.open(path, flags & ~os.O_CREAT)
        except FileNotFoundError:
            if not flags & os.O_CREAT:
                raise
            continue
        try:
            restrict_mode(fd, mode, name=path)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise FileNotFoundError(f"{os.fspath(path)!r} kept disappearing while being opened")


def restrict_mode(file: int | str | os.PathLike[str], mode: int = PRIVATE_FILE_MODE, *,
                  name: str | os.PathLike[str] | None = None) -> None:
    """Remove from an existing regular file (a path or a descriptor) the permission bits ``mode`` does not allow.

    A file whose owner is someone else cannot be changed: that is logged as a warning, not raised, because
    the file can still be written and stopping the application for it would be worse.
    """
    st = os.stat(file)
    label = name if name is not None else file
    current = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or current & ~mode == 0:
        return
    try:
        os.chmod(file, current & mode)
    except PermissionError:
        log.warning("llmmetrics: %s is mode %04o and owned by uid %d: cannot restrict it to %04o",
                    label, current, st.st_uid, current & mode)
        return
    log.warning("llmmetrics: restricted %s from mode %04o to %04o: it holds trace records", label, current,
                current & mode)
