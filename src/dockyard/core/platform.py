"""What every library call needs: settings, the database, keys and limiters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dockyard.core.auth_cache import AuthCache
from dockyard.kernel.db import Database
from dockyard.kernel.ratelimit import RateLimiter, SharedCounts
from dockyard.kernel.security import Keys, Passwords, SecretBox, read_key_file
from dockyard.kernel.settings import Settings

LIMITS_FILE = "limits.sqlite"  # in the data directory


@dataclass
class Limiters:
    per_client: RateLimiter
    per_account: RateLimiter
    hooks: RateLimiter  # webhook deliveries per client address

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiters:
        """Counted for the machine: its API processes share the counts."""
        window = float(settings.login_limit_window_seconds)

        def shared(name: str, limit: int, seconds: float) -> RateLimiter:
            counts = SharedCounts(settings.data_dir / LIMITS_FILE, name)
            return RateLimiter(limit, seconds, clock=time.time, counts=counts)

        return cls(
            per_client=shared("client", settings.login_limit_per_client, window),
            per_account=shared("account", settings.login_limit_per_account, window),
            hooks=shared("hooks", settings.hook_rate_per_minute, 60.0),
        )


@dataclass
class Platform:
    settings: Settings
    db: Database
    keys: Keys
    box: SecretBox
    limiters: Limiters = field(init=False)
    passwords: Passwords = field(init=False)
    auth_cache: AuthCache = field(init=False)

    def __post_init__(self) -> None:
        self.limiters = Limiters.from_settings(self.settings)
        self.auth_cache = AuthCache(self.settings.auth_cache_seconds)
        self.db.on_commit(self.auth_cache.invalidate)
        self.passwords = Passwords(
            self.settings.password_time_cost, self.settings.password_memory_kib
        )

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """Read the key file and connect; the key must exist (`dockyard up` creates it)."""
        keys = Keys.from_master(read_key_file(settings.key_file))
        return cls(settings=settings, db=Database(settings), keys=keys, box=SecretBox(keys.secrets))

    async def close(self) -> None:
        await self.db.dispose()
