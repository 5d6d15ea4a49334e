"""Runs moto's server for the local cloud, and exits when the process that started it is gone.

pulse-local kills the emulator when it stops; this guard also covers the cases where it cannot
(it was killed with SIGKILL, or a test process exited), so no emulator outlives its owner.
"""
import os
import sys
import threading
import time

PARENT = os.getppid()


def _exit_with_parent() -> None:
    while True:
        if os.getppid() != PARENT:
            os._exit(0)
        time.sleep(0.5)


threading.Thread(target=_exit_with_parent, daemon=True).start()

from moto.server import main  # noqa: E402  (imported after the guard starts: moto loads slowly)

main(sys.argv[1:])
