"""The Lua scripts of a lease: a Redis key holding its owner's random id, with a time to
live, that only its owner extends or deletes. Shared by the fleet's leases
(:mod:`pecapi.fleet.leases`) and the provisioning journal's claims
(:mod:`pecapi.fleet.journal_redis`); importing this module imports no Redis client."""

from __future__ import annotations

__all__ = ["ACQUIRE", "EXTEND", "RELEASE"]

# KEYS[1] the lease; ARGV owner, ttl (ms). Taken, or extended when already ours (a retried
# call whose first answer was lost): {1, 0}; else {0, ms left}.
ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0}
end
if held then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, 0}
"""

# KEYS the leases; ARGV[1] ttl (ms), then one owner per key. Each: 1 extended, 0 lost.
EXTEND = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS[1] the lease; ARGV[1] owner. Deleted only by its owner.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
