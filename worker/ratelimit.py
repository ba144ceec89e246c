"""Rate limits shared by every worker process: token buckets kept in Redis.

The whole check-and-take runs as one Lua script on the Redis server with the server's
clock, so workers on different machines see one bucket. Without Redis (the embedded
default runs everything in one process) a process-local bucket does the same job.
"""

import threading
import time
from functools import cache

import redis

from . import broker

# KEYS: bucket hash, block-until key. ARGV: rate (tokens/s), capacity, cost.
# Returns the seconds to wait as a string (0 = taken).
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return tostring(blocked - now) end
local rate, capacity, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2])
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts') or now)
tokens = math.min(capacity, tokens + (now - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""

# KEYS: block-until key. ARGV: seconds. Atomic, on the server's clock (sub-second), and only ever
# extends the block, so two workers told different Retry-After values cannot shorten each other's.
_BLOCK = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local seconds = tonumber(ARGV[1])
if now + seconds > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(now + seconds), 'PX', math.ceil(seconds * 1000) + 1000)
end
return 1
"""

# KEYS: bucket hash. ARGV: rate, capacity, delta. Settles an estimate against the real cost: a
# positive delta gives tokens back (up to capacity), a negative one takes more, down into debt
# that later takers wait out.
_SETTLE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate, capacity, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2])
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts') or now)
tokens = math.min(capacity, math.min(capacity, tokens + (now - ts) * rate) + delta)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(tokens)
"""


@cache
def redis_client() -> redis.Redis | None:
    url = broker.shared_state_url()
    return None if url is None else broker.redis_client(url, timeout=5)


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved up (the burst)."""

    def __init__(self, name: str, rate: float, capacity: float | None = None, client: redis.Redis | None = None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.name = f"newsdigest:rl:{name}"
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self.client = client if client is not None else redis_client()
        self._lock = threading.Lock()
        self._local = {"tokens": self.capacity, "ts": time.monotonic(), "blocked": 0.0}
        self._script = self.client.register_script(_TAKE) if self.client is not None else None
        self._block = self.client.register_script(_BLOCK) if self.client is not None else None
        self._settle = self.client.register_script(_SETTLE) if self.client is not None else None

    def try_acquire(self, cost: float = 1.0) -> float:
        """Take `cost` tokens if they are there and return 0, else return the seconds to wait."""
        if cost > self.capacity:
            raise ValueError(f"cost {cost} exceeds the bucket's capacity {self.capacity}")
        if self._script is not None:
            keys = [self.name, f"{self.name}:blocked"]
            return float(self._script(keys=keys, args=[self.rate, self.capacity, cost]))
        with self._lock:
            now = time.monotonic()
            if self._local["blocked"] > now:
                return self._local["blocked"] - now
            tokens = min(self.capacity, self._local["tokens"] + (now - self._local["ts"]) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate
            self._local.update(tokens=tokens, ts=now)
            return wait

    def acquire(self, cost: float = 1.0, timeout: float | None = None) -> bool:
        """Block until the tokens are taken; False if that would take longer than `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (wait := self.try_acquire(cost)) > 0:
            if deadline is not None and time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)
        return True

    def block_for(self, seconds: float) -> None:
        """Everyone waits (e.g. the server said Retry-After); a shorter block never shortens a longer one."""
        if self._block is not None:
            self._block(keys=[f"{self.name}:blocked"], args=[seconds])
            return
        with self._lock:
            self._local["blocked"] = max(self._local["blocked"], time.monotonic() + seconds)

    def settle(self, delta: float) -> None:
        """Correct an earlier take by `delta` tokens: > 0 returns an overestimate, < 0 charges
        what the estimate missed (the server's reported usage is the truth)."""
        if self._settle is not None:
            self._settle(keys=[self.name], args=[self.rate, self.capacity, delta])
            return
        with self._lock:
            now = time.monotonic()
            tokens = min(self.capacity, self._local["tokens"] + (now - self._local["ts"]) * self.rate)
            self._local.update(tokens=min(self.capacity, tokens + delta), ts=now)
