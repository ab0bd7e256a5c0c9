"""What every library call needs: settings, the database, keys and limiters."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.kernel.db import Database
from dockyard.kernel.ratelimit import RateLimiter
from dockyard.kernel.security import Keys, Passwords, SecretBox, read_key_file
from dockyard.kernel.settings import Settings


@dataclass
class Limiters:
    per_client: RateLimiter
    per_account: RateLimiter
    hooks: RateLimiter  # webhook deliveries per client address

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiters:
        window = float(settings.login_limit_window_seconds)
        return cls(
            per_client=RateLimiter(settings.login_limit_per_client, window),
            per_account=RateLimiter(settings.login_limit_per_account, window),
            hooks=RateLimiter(settings.hook_rate_per_minute, 60.0),
        )


@dataclass
class Platform:
    settings: Settings
    db: Database
    keys: Keys
    box: SecretBox
    limiters: Limiters = field(init=False)
    passwords: Passwords = field(init=False)

    def __post_init__(self) -> None:
        self.limiters = Limiters.from_settings(self.settings)
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
