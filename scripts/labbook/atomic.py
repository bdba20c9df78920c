"""Writing a file so that a killed step never leaves half of it, and a full disk is named."""

import errno
import os
import socket
from contextlib import contextmanager
from pathlib import Path


class DiskFullError(OSError):
    """The file system holding a file ran out of space while it was written."""


def _temporary_name(path: Path, pid: int) -> Path:
    # host and process in the name: a file of another machine's process is never taken for stale
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{pid}")


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of `path` left by processes of this machine that no longer run (killed
    mid-write): they only take space."""
    prefix = _temporary_name(path, 0).name[:-1]
    for stale in path.parent.iterdir():
        pid = stale.name[len(prefix) :]
        if not stale.name.startswith(prefix) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            stale.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC anywhere in the chain: torch.save reports a failed write as its own RuntimeError."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def atomic_open(path: Path):
    """A binary file to write `path` through: a temporary file of the same folder, renamed to
    `path` when the block ends, removed when it raises. For a file written piece by piece (the
    data step's arrays); atomic_write is the same for a file written by one call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = _temporary_name(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, Exception) and is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(
                errno.ENOSPC, f"no space left on {path.parent} while writing {path.name}"
            ) from error
        raise


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a killed step never leaves half a file.

    A write that fails removes its temporary file; one killed outright leaves it, and the next
    write of the same path removes it. A full disk raises DiskFullError naming the folder."""
    with atomic_open(path) as f:
        write(f)
