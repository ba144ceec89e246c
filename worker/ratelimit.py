"""Rate limits shared by every worker process: token buckets kept in Redis.

The whole check-and-take runs as one Lua script on the Redis server with the server's
clock, so workers on different machines see one bucket. Without Redis (the embedded
default runs everything in one process) a process-local bucket does the same job.
"""

import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
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


# KEYS: per bucket j, its hash (KEYS[2j-1]) and its block-until key (KEYS[2j]). ARGV: the number of
# buckets B, then rate and capacity of each, then per message the count of its buckets followed by
# their indices. Messages take one token from each of their buckets, in order, until one would wait.
# Returns {messages granted, seconds until the next one may go (string, "0" when all were granted)}.
_TAKE_IN_ORDER = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local nb = tonumber(ARGV[1])
local rate, capacity, tokens, blocked = {}, {}, {}, {}
for j = 1, nb do
  rate[j], capacity[j] = tonumber(ARGV[2 * j]), tonumber(ARGV[2 * j + 1])
  local saved = tonumber(redis.call('HGET', KEYS[2 * j - 1], 'tokens') or capacity[j])
  local ts = tonumber(redis.call('HGET', KEYS[2 * j - 1], 'ts') or now)
  tokens[j] = math.min(capacity[j], saved + (now - ts) * rate[j])
  blocked[j] = tonumber(redis.call('GET', KEYS[2 * j]) or '0') - now
end
local pos, granted, wait = 2 * nb + 2, 0, 0
while pos <= #ARGV do
  local count = tonumber(ARGV[pos])
  for k = 1, count do
    local j = tonumber(ARGV[pos + k])
    if blocked[j] > 0 then wait = math.max(wait, blocked[j])
    elseif tokens[j] < 1 then wait = math.max(wait, (1 - tokens[j]) / rate[j]) end
  end
  if wait > 0 then break end
  for k = 1, count do
    local j = tonumber(ARGV[pos + k])
    tokens[j] = tokens[j] - 1
  end
  granted = granted + 1
  pos = pos + count + 1
end
for j = 1, nb do
  redis.call('HSET', KEYS[2 * j - 1], 'tokens', tostring(tokens[j]), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[2 * j - 1], math.ceil(capacity[j] / rate[j]) + 60)
end
return {granted, tostring(wait)}
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


@cache
def _take_in_order_script(client: redis.Redis):
    return client.register_script(_TAKE_IN_ORDER)


def take_in_order(demands: Sequence[Sequence[TokenBucket]]) -> tuple[int, float]:
    """One token from each bucket of `demands[0]`, then of `demands[1]`, ... until one would have to wait;
    a message takes all of its tokens or none. One Redis round trip for the lot (the buckets share one
    client) instead of one per bucket and message.

    Returns (how many leading demands were granted, seconds until the next one may go; 0 when all were).
    """
    buckets = list({id(b): b for demand in demands for b in demand}.values())
    if not buckets:
        return len(demands), 0.0
    index = {id(b): j for j, b in enumerate(buckets, start=1)}
    client = buckets[0].client
    if client is not None:
        if any(b.client is not client for b in buckets):
            raise ValueError("take_in_order needs buckets that share one Redis client")
        keys = [key for b in buckets for key in (b.name, f"{b.name}:blocked")]
        args: list[float] = [len(buckets), *(v for b in buckets for v in (b.rate, b.capacity))]
        for demand in demands:
            args += [len(demand), *(index[id(b)] for b in demand)]
        granted, wait = _take_in_order_script(client)(keys=keys, args=args)
        return int(granted), float(wait)
    with ExitStack() as stack:
        for bucket in sorted(buckets, key=lambda b: b.name):  # one order, so two takers cannot deadlock
            stack.enter_context(bucket._lock)
        now = time.monotonic()
        tokens = {id(b): min(b.capacity, b._local["tokens"] + (now - b._local["ts"]) * b.rate) for b in buckets}
        granted, wait = 0, 0.0
        for demand in demands:
            for b in demand:
                if b._local["blocked"] > now:
                    wait = max(wait, b._local["blocked"] - now)
                elif tokens[id(b)] < 1:
                    wait = max(wait, (1 - tokens[id(b)]) / b.rate)
            if wait > 0:
                break
            for b in demand:
                tokens[id(b)] -= 1
            granted += 1
        for b in buckets:
            b._local.update(tokens=tokens[id(b)], ts=now)
        return granted, wait
