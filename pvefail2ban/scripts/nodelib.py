"""What the node daemons of pve-fail2ban share (share.py, events.py): reading an outbox that
fail2ban's actions append to, and waking on inotify instead of polling. Standard library only;
installed beside them in /usr/local/lib/pve-fail2ban."""

import ctypes
import os

ROTATE = 1 << 20  # outbox bytes after which it is renamed (and its tail still read)
IN_MODIFY, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x2, 0x80, 0x100, 0x200
NEW_DATA = IN_MODIFY | IN_CREATE | IN_MOVED_TO


class Tail:
    """New lines appended to a file, from where the last read stopped (survives a rename)."""

    def __init__(self, path):
        self.path, self.file, self.old = path, None, None

    def lines(self):
        found = []
        if self.old is not None:  # writers that opened the renamed file just before it moved
            found += self.old.read().splitlines()
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = None
        if self.file is not None and (ino is None or os.fstat(self.file.fileno()).st_ino != ino):
            found += self.file.read().splitlines()
            self.file.close()
            self.file = None
        if self.file is None and ino is not None:
            self.file = open(self.path)
        if self.file is not None:
            found += self.file.read().splitlines()
        return found

    def rotate(self):
        """Start a fresh file once this one is large and fully read."""
        if self.file is None or self.file.tell() < ROTATE:
            return
        if self.old is not None:
            self.old.close()
        os.rename(self.path, self.path + ".old")
        self.old, self.file = self.file, None


def inotify(path, mask=NEW_DATA):
    """An inotify descriptor watching `path` (for new data, by default), or None where there is
    none."""
    try:
        fd = _libc().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0 or not watch(fd, path, mask):
            return None
        return fd
    except (OSError, AttributeError):
        return None


def watch(fd, path, mask):
    """Add `path` to inotify descriptor `fd`; False when it cannot be watched (e.g. not there)."""
    return _libc().inotify_add_watch(fd, path.encode(), mask) >= 0


def _libc():
    return ctypes.CDLL(None, use_errno=True)
