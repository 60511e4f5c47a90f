// The Lua scripts behind `SharedAdmission`: every decision about a shared upstream's budget is one
// atomic script on Redis, so processes on any number of machines see one set of limits. Times are
// Redis's own clock (TIME), so the machines' clocks need not agree.
//
// State of one upstream (the keys share a hash tag, so they sit in one Redis Cluster slot):
//   state    HASH  per dimension d in r (requests), t (tokens), i (input), o (output):
//                    d:set (configured per minute), d:learned and d:learned_at (the provider's
//                    own limit as its headers last gave it; forgotten after 10 minutes without
//                    a reading), d:lim (in force: the lower of the two),
//                    d:lvl, d:ts (token bucket level at time ts: continuous refill at lim/60000
//                    per ms, capped at lim * burst / 60 less the jitter allowance, see `bucket`;
//                    negative while reserved ahead),
//                    inf:d (reserved by leases held); the cooldown (cool_until, cool_start,
//                    cool_factor); the concurrency limit (conc, cmode static|auto, cmin, cmax,
//                    ss: slow start, clast: last decrease, rtt: smoothed latency); config, ttl.
//   leases   ZSET  lease id -> expiry (Redis ms); a lease is one attempt's slot.
//   charges  HASH  lease id -> "r t i o start": what it reserved and when it may start.
//   waiters  LIST  lease ids waiting for a slot, first come first served.
//   waiting  HASH  waiter id -> "worker r t i o".
//   workers  ZSET  worker id -> expiry of its heartbeat (its holder's renewals).
// Channels: <prefix>grant:<worker> ("id waitMs", or "id -1 dim limit cost" if it can never fit)
// and <prefix>cooldown ("ms" from now). Markers <prefix>done:<id> (10 min) make a resent
// reconcile or cancel a no-op.
//
// Admission takes a slot and every rate dimension at once, weighted by the request's estimate.
// A rate it cannot meet now is reserved ahead (virtual scheduling, as GCRA does): the bucket goes
// negative and the caller is told when it may start, so admission is one round trip whatever the
// wait. A slot it cannot have now queues the caller in `waiters`; a freed slot is handed to the
// first live waiter inside the script that frees it, and the waiter hears it on its channel.

/** Shared by every script: state loading, buckets, leases, waiters. */
const PRELUDE = `
local S, L, LC, W, WD, WK = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local DIMS = {'r', 't', 'i', 'o'}
local st = {}
local dirty = {}
local function fmt(x) return string.format('%.17g', x) end
local function num(v) if v == nil or v == '' or v == false then return nil end return tonumber(v) end
local function set(k, v) st[k] = v; dirty[k] = true end
local function load()
  local flat = redis.call('HGETALL', S)
  for i = 1, #flat, 2 do st[flat[i]] = flat[i + 1] end
end
local function save()
  local args = {}
  for k, _ in pairs(dirty) do
    args[#args + 1] = k
    args[#args + 1] = st[k] or ''
  end
  if #args > 0 then redis.call('HSET', S, unpack(args)) end
  dirty = {}
end
local function split(s)
  local out = {}
  for v in string.gmatch(s, '%S+') do out[#out + 1] = v end
  return out
end
local function ttl() return num(st.ttl) or 10000 end
local function capacity() return math.max(1, math.floor(num(st.conc) or 1)) end

-- A dimension's bucket refilled to now (nil if the dimension is not limited). It holds what the
-- provider's holds less what refills in \`jitter\` ms (at most half of it): paced at exactly the
-- limit, requests from several processes reach the provider with some jitter (event loops, the
-- network), and a later one arriving a little early would find the provider's bucket empty.
-- This slack absorbs that jitter; the rate itself is the limit's.
local function bucket(d)
  local lim = num(st[d .. ':lim'])
  if not lim then return nil end
  local full = lim * (num(st.burst) or 1) / 60
  local cap = full - math.min(full / 2, lim * (num(st.jitter) or 0) / 60000)
  local lvl = num(st[d .. ':lvl'])
  if not lvl then lvl = cap end
  local ts = num(st[d .. ':ts']) or now
  if now > ts then
    if lvl < cap then lvl = math.min(cap, lvl + (now - ts) * lim / 60000) end
    ts = now
  end
  if lvl > cap then lvl = cap end
  return { lim = lim, cap = cap, lvl = lvl, ts = ts }
end
local function store(d, b)
  set(d .. ':lvl', fmt(b.lvl))
  set(d .. ':ts', fmt(b.ts))
end
-- Takes delta (> 0) or gives it back (< 0, never above capacity).
local function adjust(d, delta)
  if delta == 0 then return end
  local b = bucket(d)
  if not b then return end
  b.lvl = math.min(b.cap, b.lvl - delta)
  store(d, b)
end
-- The first dimension where the charge exceeds a whole minute's limit.
local function tooLarge(c)
  for k, d in ipairs(DIMS) do
    local lim = num(st[d .. ':lim'])
    if lim and c[k] > lim then return d, lim, c[k] end
  end
  return nil
end
-- Takes the charge from every bucket; returns when it may start (Redis ms).
local function reserve(c)
  local start = now
  local bs = {}
  for k, d in ipairs(DIMS) do
    local b = bucket(d)
    if b then
      local cost = c[k]
      if cost > 0 then
        local need = math.min(cost, b.cap)
        if b.lvl < need then
          start = math.max(start, math.max(now, b.ts) + (need - b.lvl) * 60000 / b.lim)
        end
      end
      bs[k] = b
    end
  end
  for k, d in ipairs(DIMS) do
    local b = bs[k]
    if b then
      b.lvl = b.lvl - c[k]
      store(d, b)
    end
  end
  local cool = num(st.cool_until) or 0
  if cool > start then start = cool end
  return start
end
local function inflight(k, delta)
  set('inf:' .. DIMS[k], fmt(math.max(0, (num(st['inf:' .. DIMS[k]]) or 0) + delta)))
end
local function addLease(id, c, start)
  redis.call('ZADD', L, now + ttl(), id)
  redis.call('HSET', LC, id, fmt(c[1]) .. ' ' .. fmt(c[2]) .. ' ' .. fmt(c[3]) .. ' ' .. fmt(c[4]) .. ' ' .. fmt(start))
  for k = 1, 4 do inflight(k, c[k]) end
end
-- Frees a lease; returns what it had reserved (nil if it was not held).
local function dropLease(id)
  redis.call('ZREM', L, id)
  local s = redis.call('HGET', LC, id)
  if not s then return nil end
  redis.call('HDEL', LC, id)
  local p = split(s)
  local c = { tonumber(p[1]), tonumber(p[2]), tonumber(p[3]), tonumber(p[4]) }
  for k = 1, 4 do inflight(k, -c[k]) end
  return c
end
-- Leases whose holder stopped renewing them (a dead worker) are freed; what they reserved stays
-- charged (their call may well have been made).
local function purge()
  local expired = redis.call('ZRANGEBYSCORE', L, '-inf', now)
  for _, id in ipairs(expired) do dropLease(id) end
  return #expired
end
local function coolRemaining() return math.max(0, (num(st.cool_until) or 0) - now) end
-- Hands free slots to the first live waiters, in order.
local function grantWaiters()
  while redis.call('ZCARD', L) < capacity() do
    local id = redis.call('LPOP', W)
    if not id then break end
    local w = redis.call('HGET', WD, id)
    if w then
      redis.call('HDEL', WD, id)
      local p = split(w)
      local worker = p[1]
      local alive = num(redis.call('ZSCORE', WK, worker))
      if alive and alive >= now then
        local c = { tonumber(p[2]), tonumber(p[3]), tonumber(p[4]), tonumber(p[5]) }
        local d, lim, cost = tooLarge(c)
        if d then
          redis.call('PUBLISH', prefix .. 'grant:' .. worker, id .. ' -1 ' .. d .. ' ' .. fmt(lim) .. ' ' .. fmt(cost))
        else
          local start = reserve(c)
          addLease(id, c, start)
          redis.call('PUBLISH', prefix .. 'grant:' .. worker, id .. ' ' .. fmt(start - now))
        end
      end
    end
  end
end
local function heartbeat(worker) redis.call('ZADD', WK, now + ttl(), worker) end
local function reply(status, a, b, c)
  return { status, a or '', b or '', c or '', fmt(num(st.conc) or 1), redis.call('ZCARD', L), fmt(coolRemaining()) }
end
`;

/**
 * Sets the upstream's configuration (limits, burst, concurrency, lease TTL) if it differs, and
 * registers the worker. ARGV: prefix, worker, config signature, burst, ttl, learn (0/1), cmode,
 * conc (static limit or auto's initial), cmin, cmax, the per-minute limit of r, t, i, o ('' for
 * none), the jitter allowance, ms, and '1' to set them only if the state has none (a Redis that
 * restarted without its data: the process that notices puts its settings back).
 * Returns the reply shape with the previous signature when it changed (status 1) or not (0).
 */
const INIT = `${PRELUDE}
load()
local sig = ARGV[3]
local previous = st.config or ''
local changed = 0
if previous ~= sig and not (ARGV[16] == '1' and previous ~= '') then
  changed = 1
  set('config', sig)
  set('burst', ARGV[4])
  set('jitter', ARGV[15])
  set('ttl', ARGV[5])
  set('learn', ARGV[6])
  for k, d in ipairs(DIMS) do
    local configured = num(ARGV[10 + k])
    local learned = num(st[d .. ':learned'])
    if learned and now - (num(st[d .. ':learned_at']) or 0) > 600000 then learned = nil end
    set(d .. ':set', configured and fmt(configured) or '')
    local lim = configured
    if learned and (not lim or learned < lim) then lim = learned end
    set(d .. ':lim', lim and fmt(lim) or '')
  end
  local cmode = ARGV[7]
  if st.cmode ~= cmode or cmode == 'static' then
    set('cmode', cmode)
    set('conc', ARGV[8])
    set('ss', '1')
  end
  set('cmin', ARGV[9])
  set('cmax', ARGV[10])
  local conc = math.max(tonumber(ARGV[9]), math.min(tonumber(ARGV[10]), num(st.conc) or tonumber(ARGV[8])))
  set('conc', fmt(conc))
end
heartbeat(ARGV[2])
purge()
grantWaiters()
save()
return reply(changed, previous)
`;

/**
 * One attempt asks for a slot and its charge. ARGV: prefix, id, worker, r, t, i, o.
 * Returns {1, waitMs} granted (it may start in waitMs), {0} queued (a grant comes on the
 * worker's channel), {-1, dim, limit, cost} too large for a whole minute, {-2} already ended,
 * {-4} no settings (Redis lost its data: the caller puts them back with INIT and asks again).
 * A resend of the same id (after a lost reply) answers as the first did.
 */
const ADMIT = `${PRELUDE}
load()
local id, worker = ARGV[2], ARGV[3]
local held = redis.call('HGET', LC, id)
if held then
  local p = split(held)
  return reply(1, fmt(math.max(0, tonumber(p[5]) - now)))
end
if redis.call('HEXISTS', WD, id) == 1 then return reply(0) end
if redis.call('EXISTS', prefix .. 'done:' .. id) == 1 then return reply(-2) end
if not st.config then return reply(-4) end
heartbeat(worker)
purge()
grantWaiters()
local c = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local d, lim, cost = tooLarge(c)
if d then
  save()
  return reply(-1, d, fmt(lim), fmt(cost))
end
if redis.call('LLEN', W) == 0 and redis.call('ZCARD', L) < capacity() then
  local start = reserve(c)
  addLease(id, c, start)
  save()
  return reply(1, fmt(start - now))
end
redis.call('RPUSH', W, id)
redis.call('HSET', WD, id, worker .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6] .. ' ' .. ARGV[7])
save()
return reply(0)
`;

/**
 * An attempt ended: frees its slot and reconciles. ARGV: prefix, id, worker, started (0/1),
 * result, latencyMs, reserved r t i o (7-10), charged r t i o (11-14), retryAfterMs ('' none),
 * cooldownMs, cooldown factor (1 + jitter draw), then per dimension r, t, i, o four readings
 * (limit, remaining, resetMs, fixedWindow 0/1; '' when absent) at 18-33.
 */
const RECONCILE = `${PRELUDE}
load()
local id = ARGV[2]
heartbeat(ARGV[3])
if not redis.call('SET', prefix .. 'done:' .. id, '1', 'PX', 600000, 'NX') then
  purge()
  grantWaiters()
  save()
  return reply(0)
end
local started = ARGV[4] == '1'
local result = ARGV[5]
local latency = tonumber(ARGV[6]) or 0
dropLease(id)
purge()
-- The real usage: refund what was over-estimated, take what was under (or give all back if
-- nothing was sent).
for k, d in ipairs(DIMS) do
  local reserved = tonumber(ARGV[6 + k])
  local charged = tonumber(ARGV[10 + k])
  if not started then adjust(d, -reserved) else adjust(d, charged - reserved) end
end
-- The provider's readings correct the shared levels: what it has left, plus what refilled since
-- the reporting call started, less what other holders reserved that it may not have seen yet.
local readings = false
local learn = st.learn == '1'
for k, d in ipairs(DIMS) do
  local base = 17 + (k - 1) * 4
  local limit = num(ARGV[base + 1])
  local remaining = num(ARGV[base + 2])
  local resetMs = num(ARGV[base + 3])
  local fixed = ARGV[base + 4] == '1'
  if limit or remaining then readings = true end
  if limit and limit > 0 then
    -- The provider's limit, as it says now (raised or lowered), never above the one configured.
    local configured = num(st[d .. ':set'])
    if configured or learn then
      set(d .. ':learned', fmt(limit))
      set(d .. ':learned_at', fmt(now))
      local lim = limit
      if configured and configured < lim then lim = configured end
      if num(st[d .. ':lim']) ~= lim then set(d .. ':lim', fmt(lim)) end
    end
  end
  if remaining then
    local b = bucket(d)
    if b then
      local refill = b.lim * latency / 60000
      local others = num(st['inf:' .. d]) or 0
      local level = remaining + refill - others
      if level < b.lvl then b.lvl = level end
      if fixed and resetMs and resetMs > 0 and now + resetMs > b.ts then b.ts = now + resetMs end
      store(d, b)
    end
  end
end
-- One shared cooldown per burst of 429s: a failure from an attempt started before the current
-- pause began only lengthens it to its own wait counted from the pause's start.
local function pause(duration, factorArg)
  local startedAt = now - latency
  local from = now
  local factor = tonumber(factorArg) or 1
  local coolStart = num(st.cool_start)
  if coolStart and startedAt <= coolStart then
    from = coolStart
    factor = num(st.cool_factor) or factor
  else
    set('cool_start', fmt(now))
    set('cool_factor', fmt(factor))
  end
  local untilAt = from + duration * factor
  if untilAt > (num(st.cool_until) or 0) then
    set('cool_until', fmt(untilAt))
    redis.call('PUBLISH', prefix .. 'cooldown', fmt(untilAt - now))
  end
end
local retryAfter = num(ARGV[15])
if started and result == 'rate_limit' then
  if not readings then
    for _, d in ipairs(DIMS) do
      local b = bucket(d)
      if b and b.lvl > 0 then
        b.lvl = 0
        store(d, b)
      end
    end
  end
  pause(retryAfter or tonumber(ARGV[16]), ARGV[17])
elseif started and result == 'overload' and retryAfter then
  pause(retryAfter, ARGV[17])
end
-- The shared adaptive limit (cmode auto): one AIMD over every worker's outcomes.
if started and st.cmode == 'auto' then
  local conc = num(st.conc) or 1
  local cmin = num(st.cmin) or 1
  local cmax = num(st.cmax) or 256
  local rtt = num(st.rtt)
  if result == 'success' then
    if rtt then rtt = rtt * 0.875 + latency * 0.125 else rtt = latency end
    set('rtt', fmt(rtt))
    if redis.call('ZCARD', L) + 1 >= conc / 2 then
      if st.ss ~= '0' then conc = conc + 1 else conc = conc + 1 / conc end
    end
    -- Little's law: no more in flight than the rate limits can feed over a round trip.
    local x = nil
    for k, d in ipairs(DIMS) do
      local lim = num(st[d .. ':lim'])
      local cost = tonumber(ARGV[10 + k])
      if lim and cost > 0 then
        local xd = lim / 60000 / cost
        if not x or xd < x then x = xd end
      end
    end
    if x then conc = math.min(conc, math.max(cmin, math.ceil(1.2 * x * rtt))) end
  elseif result == 'rate_limit' or result == 'overload' or result == 'timeout' then
    if now - (num(st.clast) or -1e18) >= (rtt or 0) then
      local beta = 0.5
      if result == 'rate_limit' then beta = 0.7 end
      conc = math.floor(conc * beta)
      set('ss', '0')
      set('clast', fmt(now))
    end
  end
  set('conc', fmt(math.max(cmin, math.min(cmax, conc))))
end
grantWaiters()
save()
return reply(1)
`;

/**
 * An attempt gives up before it sends anything (aborted while queued or before its start): it
 * leaves the queue, or frees its slot and gets its whole charge back. ARGV: prefix, id, worker.
 */
const CANCEL = `${PRELUDE}
load()
local id = ARGV[2]
if not redis.call('SET', prefix .. 'done:' .. id, '1', 'PX', 600000, 'NX') then return reply(0) end
redis.call('LREM', W, 0, id)
redis.call('HDEL', WD, id)
local c = dropLease(id)
if c then
  for k, d in ipairs(DIMS) do adjust(d, -c[k]) end
end
purge()
grantWaiters()
save()
return reply(1)
`;

/**
 * A waiter that heard nothing for a while asks where it stands (a grant message can be lost while
 * its subscriber reconnects). ARGV: prefix, id, worker. Returns {1, waitMs} granted, {0} queued,
 * {-2} ended, {-3} unknown (the state was lost: admit again).
 */
const CHECK = `${PRELUDE}
load()
local id = ARGV[2]
heartbeat(ARGV[3])
purge()
grantWaiters()
save()
local held = redis.call('HGET', LC, id)
if held then
  local p = split(held)
  return reply(1, fmt(math.max(0, tonumber(p[5]) - now)))
end
if redis.call('HEXISTS', WD, id) == 1 then return reply(0) end
if redis.call('EXISTS', prefix .. 'done:' .. id) == 1 then return reply(-2) end
return reply(-3)
`;

/**
 * A holder renews its leases and its heartbeat. A lease it still holds that Redis no longer has
 * (it expired during an outage, or Redis restarted without it) is put back, with its charge, so
 * the count of calls in flight stays true. ARGV: prefix, worker, then per lease: id r t i o start.
 * Returns {count put back}.
 */
const RENEW = `${PRELUDE}
load()
heartbeat(ARGV[2])
purge()
local restored = 0
for j = 3, #ARGV, 6 do
  local id = ARGV[j]
  if redis.call('ZSCORE', L, id) then
    redis.call('ZADD', L, now + ttl(), id)
  elseif redis.call('EXISTS', prefix .. 'done:' .. id) == 0 then
    local c = { tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3]), tonumber(ARGV[j + 4]) }
    addLease(id, c, tonumber(ARGV[j + 5]))
    restored = restored + 1
  end
end
grantWaiters()
save()
return reply(restored)
`;

/** Each script with the number of keys it takes (all six state keys). */
export const ADMISSION_SCRIPTS = {
  salvoAdmissionInit: INIT,
  salvoAdmissionAdmit: ADMIT,
  salvoAdmissionReconcile: RECONCILE,
  salvoAdmissionCancel: CANCEL,
  salvoAdmissionCheck: CHECK,
  salvoAdmissionRenew: RENEW,
} as const;

export type AdmissionScript = keyof typeof ADMISSION_SCRIPTS;

/** The six keys of an upstream's state, under `prefix` (which carries the hash tag). */
export function admissionKeys(prefix: string): string[] {
  return ["state", "leases", "charges", "waiters", "waiting", "workers"].map((k) => prefix + k);
}
