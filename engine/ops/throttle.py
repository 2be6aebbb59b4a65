"""Failed sign-ins, counted per account and per client address in Redis, where every
server process sees them, so that guessing passwords is slow however many servers answer.

Every sign-in attempt counts until it succeeds (counted before the password is checked,
so attempts made at once cannot slip past the count together); a success forgets the
account's and the address's count. Past the free attempts (ACCOUNT_FREE for an account,
ADDRESS_FREE for an address, which many people may share behind one router), each
attempt locks the account (or address) for FIRST_LOCK, doubling with every further one,
never longer than LONGEST_LOCK: a lock always ends, so an attacker can slow a person down
but never shut them out for good. A count is forgotten FORGET_AFTER after its last
attempt or the end of its lock, whichever is later.

Times come from engine.core.clock (a test's virtual clock moves the locks); Redis' own expiry
only clears keys nobody asks about. Why not the `limits` library: it counts hits in fixed
or moving windows, while a lock that doubles and a count a success resets are what make
guessing slow without locking people out, and it wants a connection URL of its own where
we have the runtime's connection (embedded or not).

If Redis cannot be reached, sign-ins are not throttled (and a warning is logged): the
database still checks every password, and people can still sign in.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from engine.core import clock
from engine.core.errors import TooManyAttempts

log = logging.getLogger(__name__)

ACCOUNT_FREE = 5
ADDRESS_FREE = 20
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(minutes=15)
FORGET_AFTER = timedelta(minutes=15)

#: KEYS: the account's and the address's hash (fields: attempts, last, locked_until).
#: ARGV: now, forget_after, first_lock, longest_lock, key ttl (seconds), then each key's
#: free attempts. Returns {0, 0} when the attempt may go on (it is counted), else {the
#: locked key's position, seconds until its lock ends}.
_ATTEMPT = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local locked = tonumber(redis.call('HGET', key, 'locked_until') or '0')
  if locked > now then
    return {i, tostring(locked - now)}
  end
end
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'attempts', 'last', 'locked_until')
  local attempts = tonumber(state[1] or '0')
  local quiet_since = math.max(tonumber(state[2] or '0'), tonumber(state[3] or '0'))
  if now - quiet_since > tonumber(ARGV[2]) then
    attempts = 0
  end
  attempts = attempts + 1
  local free = tonumber(ARGV[5 + i])
  local locked_until = 0
  if attempts >= free then
    locked_until = now + math.min(tonumber(ARGV[3]) * 2 ^ (attempts - free), tonumber(ARGV[4]))
  end
  redis.call('HSET', key, 'attempts', attempts, 'last', ARGV[1], 'locked_until', tostring(locked_until))
  redis.call('EXPIRE', key, ARGV[5])
end
return {0, '0'}
"""


@dataclass(frozen=True)
class Attempt:
    """Who is signing in: the name given (any JSON a client sent) and the client address."""

    username: object
    address: str


class LoginThrottle:
    """The sign-in counts of one deployment (keys under `prefix`, the queue name)."""

    def __init__(self, conn: redis.Redis, prefix: str):
        self.conn = conn
        self.prefix = prefix
        self._attempt = conn.register_script(_ATTEMPT)

    def begin(self, attempt: Attempt) -> None:
        """Count a sign-in attempt, or TooManyAttempts when its account or address is locked
        (then nothing is counted and the password must not be checked)."""
        keys, free = self._keys(attempt)
        now = _seconds(clock.now())
        ttl = math.ceil((LONGEST_LOCK + FORGET_AFTER).total_seconds())
        try:
            which, wait = self._attempt(keys=keys, args=[repr(now), FORGET_AFTER.total_seconds(),
                                                         FIRST_LOCK.total_seconds(), LONGEST_LOCK.total_seconds(),
                                                         ttl, *free])
        except redis.RedisError as exc:
            log.warning("sign-ins are not throttled: Redis does not answer (%s)", exc)
            return
        if int(which):
            raise _locked(account=len(keys) == 2 and int(which) == 1, seconds=float(wait))

    def succeeded(self, attempt: Attempt) -> None:
        """A correct sign-in: its account and address start again from nothing."""
        try:
            self.conn.delete(*self._keys(attempt)[0])
        except redis.RedisError as exc:
            log.warning("could not reset the sign-in count: Redis does not answer (%s)", exc)

    def _keys(self, attempt: Attempt) -> tuple[list[str], list[int]]:
        """(the keys counting this attempt, their free attempts): the account's first when
        the name is text (hashed: any text may be sent as a name), then the address's."""
        keys, free = [], []
        if isinstance(attempt.username, str):
            digest = hashlib.sha256(attempt.username.encode("utf-8", "replace")).hexdigest()
            keys.append(f"{self.prefix}:sign-ins:account:{digest}")
            free.append(ACCOUNT_FREE)
        keys.append(f"{self.prefix}:sign-ins:address:{attempt.address}")
        free.append(ADDRESS_FREE)
        return keys, free


def _seconds(at: datetime) -> float:
    return (at - datetime(1970, 1, 1)).total_seconds()


def _locked(*, account: bool, seconds: float) -> TooManyAttempts:
    wait = max(math.ceil(seconds), 1)
    whose = "for this account" if account else "from your network address"
    return TooManyAttempts(f"Too many failed sign-ins {whose}; try again in {_duration(wait)}.", wait)


def _duration(seconds: int) -> str:
    """`45 seconds`, `1 minute`, `2 minutes` (rounded up: never sooner than said)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
