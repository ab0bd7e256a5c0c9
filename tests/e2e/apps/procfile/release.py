"""The release command: what a migration would be; exits with $RELEASE_EXIT (default 0)."""

import os

print(f"migrating for release {os.environ['DOCKYARD_RELEASE']}", flush=True)
raise SystemExit(int(os.environ.get("RELEASE_EXIT", "0")))
