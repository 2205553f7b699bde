"""The rate limiter's Lua scripts: each runs atomically in Redis, on Redis's clock (`TIME`), so every
process shares one budget and one notion of now.

State of a scope (model + provider key), in two keys (see `app.store.keys`):

    budget  hash  req     GCRA theoretical arrival time of the next request (seconds, Redis time)
                  tok     GCRA theoretical arrival time for tokens: `tpm` tokens per 60 s
                  until   no request is admitted before this time (a provider 429's Retry-After)
                  factor  rate multiplier set by a 429, recovering linearly to 1 after `until`
    slots   zset  concurrency slot id -> lease expiry; expired slots are pruned before counting

GCRA (virtual scheduling): a request is admitted when `now >= tat - burst`, then
`tat = max(tat, now) + cost`, with cost `60 / rpm` seconds for requests and `tokens * 60 / tpm` for
tokens. Requests are therefore spaced evenly; `burst` (a few tens of milliseconds) only absorbs the
lateness of waiters waking from a sleep, so it costs no throughput and allows no real burst. A
request larger than the burst is admitted when the schedule is free and pushes the next ones back.

Every script returns strings for fractional numbers: Redis truncates Lua numbers to integers.
"""

from __future__ import annotations

_COMMON = """
local function now_seconds()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function fmt(x)
  return string.format('%.6f', x)
end

-- state = HMGET budget req tok until factor
local function rate_factor(state, now, recovery)
  local untl, factor = tonumber(state[3]), tonumber(state[4])
  if not untl or not factor then return 1 end
  if now <= untl then return factor end
  if recovery <= 0 then return 1 end
  return math.min(1, factor + (1 - factor) * (now - untl) / recovery)
end

-- Keep the budget hash while any of its fields still matters, then let it expire.
local function expire_budget(key, now, recovery)
  local s = redis.call('HMGET', key, 'req', 'tok', 'until')
  local horizon = math.max(tonumber(s[1]) or 0, tonumber(s[2]) or 0, (tonumber(s[3]) or 0) + recovery, now)
  redis.call('EXPIRE', key, math.ceil(horizon - now) + 60)
end
"""

ACQUIRE = (
    _COMMON
    + """
-- KEYS: budget, slots
-- ARGV: rpm, tpm, concurrency (0 = unlimited), tokens, slot id, lease s, burst s, poll s, recovery s
-- Returns {granted 1/0, wait seconds, reason}: the longest wait among the budgets that refuse.
local rpm, tpm, conc, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local slot, lease, burst = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local poll, recovery = tonumber(ARGV[8]), tonumber(ARGV[9])
local now = now_seconds()
local state = redis.call('HMGET', KEYS[1], 'req', 'tok', 'until', 'factor')
local wait, reason = 0, ''
local function need(seconds, why)
  if seconds > wait then wait, reason = seconds, why end
end

local untl = tonumber(state[3])
if untl and untl > now then need(untl - now, 'penalty') end
local factor = rate_factor(state, now, recovery)

local next_req, next_tok
if rpm > 0 then
  local tat = math.max(tonumber(state[1]) or 0, now)
  need(tat - burst - now, 'rpm')
  next_req = tat + 60 / (rpm * factor)
end
if tpm > 0 then
  local tat = math.max(tonumber(state[2]) or 0, now)
  need(tat - burst - now, 'tpm')
  next_tok = tat + tokens * 60 / (tpm * factor)
end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= conc then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    -- A release elsewhere is not announced: poll, but never later than the first lease expiry.
    need(math.max(math.min(tonumber(first[2]) - now, poll), 0.001), 'concurrency')
  end
end

if wait > 0 then return {0, fmt(wait), reason} end
if next_req then redis.call('HSET', KEYS[1], 'req', fmt(next_req)) end
if next_tok then redis.call('HSET', KEYS[1], 'tok', fmt(next_tok)) end
if next_req or next_tok then expire_budget(KEYS[1], now, recovery) end
if conc > 0 then
  redis.call('ZADD', KEYS[2], now + lease, slot)
  redis.call('EXPIRE', KEYS[2], math.ceil(lease) + 1)
end
return {1, '0', ''}
"""
)

RELEASE = (
    _COMMON
    + """
-- KEYS: budget, slots.  ARGV: slot id ('' = none), tpm (0 = unlimited), actual - estimated tokens, recovery s
-- Frees the slot; moves the token schedule by the estimate's error (a refund never goes below now).
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1]) end
local tpm, delta, recovery = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if tpm > 0 and delta ~= 0 then
  local now = now_seconds()
  local state = redis.call('HMGET', KEYS[1], 'req', 'tok', 'until', 'factor')
  local tat = math.max(tonumber(state[2]) or 0, now)
  local corrected = math.max(now, tat + delta * 60 / (tpm * rate_factor(state, now, recovery)))
  redis.call('HSET', KEYS[1], 'tok', fmt(corrected))
  expire_budget(KEYS[1], now, recovery)
end
return 1
"""
)

RENEW = (
    _COMMON
    + """
-- KEYS: slots.  ARGV: slot id, lease s.  Returns 1 if the slot was still held (even if just expired but not
-- yet pruned: it was counted all along), 0 if it was pruned and may already be someone else's.
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now_seconds() + lease, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(lease) + 1)
return 1
"""
)

PENALIZE = (
    _COMMON
    + """
-- KEYS: budget.  ARGV: retry_after s, recovery s, min factor.
-- Pauses the scope until now + retry_after (never shortens a pause). The first 429 of a pause halves
-- the rate; the 429s of requests already in flight during that pause only extend it.
local retry_after, recovery, min_factor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_seconds()
local state = redis.call('HMGET', KEYS[1], 'req', 'tok', 'until', 'factor')
local untl = tonumber(state[3]) or 0
local factor = rate_factor(state, now, recovery)
if now >= untl then
  factor = math.max(min_factor, factor / 2)
  redis.call('HSET', KEYS[1], 'factor', fmt(factor))
end
untl = math.max(untl, now + retry_after)
redis.call('HSET', KEYS[1], 'until', fmt(untl))
expire_budget(KEYS[1], now, recovery)
return {fmt(untl - now), fmt(factor)}
"""
)
