"""What a browser downloads on its first visit to the dashboard: each built file, raw and as
the API sends it (gzip level 9), and the total of JavaScript and CSS against issue 17's bound
of 200 KB compressed. Build first (scripts/up or scripts/test do; or
`cd dashboard && npm run build`)."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from dockyard.api.dashboard import BUILD_DIR

BOUND_KB = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=BUILD_DIR, help="the built dashboard")
    folder = parser.parse_args().dir
    files = [folder / "index.html", *sorted((folder / "assets").iterdir())]
    total = 0
    for path in files:
        raw = path.read_bytes()
        packed = len(gzip.compress(raw, compresslevel=9, mtime=0))
        total += packed if path.suffix in (".js", ".css") else 0
        print(f"{path.name:40} {len(raw) / 1024:8.1f} KB raw {packed / 1024:8.1f} KB gzipped")
    print(f"JavaScript and CSS, gzipped: {total / 1024:.1f} KB (bound {BOUND_KB} KB)")


if __name__ == "__main__":
    main()
