"""Atomic replace the way Claude Code and editors do it, for the corpus's `atomic` form.

usage: atomic.py TARGET [CONTENT] [MODE]

Opens TARGET's directory with O_PATH, writes `NAME.tmp.PID.HEX` through
`/proc/self/fd/N/` with O_EXCL, optionally chmods it (MODE in octal), then renames it onto
`/proc/self/fd/N/NAME`. Every path the kernel sees goes through the magic link.
"""
import os
import sys

target = sys.argv[1]
content = sys.argv[2] if len(sys.argv) > 2 else ""
mode = int(sys.argv[3], 8) if len(sys.argv) > 3 else None
d, name = os.path.split(os.path.abspath(target))
dfd = os.open(d, os.O_PATH | os.O_DIRECTORY)
base = f"/proc/self/fd/{dfd}"
tmp = f"{base}/{name}.tmp.{os.getpid()}.{os.urandom(4).hex()}"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
os.write(fd, content.encode())
if mode is not None:
    os.fchmod(fd, mode)
os.close(fd)
os.rename(tmp, f"{base}/{name}")
os.close(dfd)
