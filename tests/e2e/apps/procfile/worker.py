"""A worker process: says it is alive every half second until it is stopped."""

import os
import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    print(f"worker tick {os.environ['DOCKYARD_PROCESS']} of {os.environ['DOCKYARD_RELEASE']}",
          flush=True)
    time.sleep(0.5)
