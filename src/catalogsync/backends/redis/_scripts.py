"""
The Lua scripts of `RedisQueue`: each queue operation is one atomic script.

Layout per connector (every key carries the hash tag ``{prefix:connector}``, so all of one
connector's keys live in one Redis Cluster slot and a script may touch them together):

``q``   HASH  field -> record. The field is the item type's initial (``c``, ``p``, ``v``) followed
              by the ref. The record is ``version|seq|attempts|kind|force|enqueued_us|owner``
              (owner last, so it may contain ``|``; empty when not leased).
``z``   ZSET  member -> visible_at in microseconds. The member is ``seq`` as 16 hex digits
              followed by the field, so equal scores order by ``seq``: the line order is
              ``(visible_at, seq)``, and one ``ZRANGEBYSCORE -inf now`` finds ready entries and
              expired leases alike (the pgmq model, with a sorted set for the index).
``n``   HASH  type initial -> number of entries (kept by the scripts that add and remove).
``v``   STRING the version counter (``INCR``): per connector, never reset, so versions keep
              increasing across ``replace_all``.
``st``  STRING the token of a running ``replace_all``; ``sq``/``sz``/``sn`` are the set it is
              building. Staging keys expire unless a chunk refreshes them, so a crashed
              ``replace_all`` leaves nothing behind. While staging, ``enqueue`` writes to both
              sets, so a change enqueued during a force refresh survives the swap, and a forced
              write never overrides it (the user's change is newer than the refresh).
``lt:<token>``  the result of one lease call, kept briefly so a repeated call (a client retry
              after a lost reply) returns the same leases instead of stranding them.
``done:<token>`` the result of a finished swap, for the same reason.

Numbers are passed and stored as decimal strings; Lua doubles hold every integer below 2^53
exactly (microseconds until the year 2255, versions far beyond any real use).
"""

from __future__ import annotations

from typing import Final


_COMMON: Final = r"""
local CHUNK = 1000  -- keeps unpack() far below Lua's C stack limit
local function parse(rec)
  return string.match(rec, '^(%d+)|(%d+)|(%d+)|(%a)|(%d)|(%-?%d+)|(.*)$')
end
local function pack(ver, seq, att, kind, force, enq, owner)
  return table.concat({ver, seq, att, kind, force, enq, owner}, '|')
end
local function member(seq, field)
  return string.format('%016x', tonumber(seq)) .. field
end
"""

#: KEYS q z n v st sq sz sn; ARGV now force token stage_ttl_ms, then (field, kind) pairs.
ENQUEUE: Final = (
    _COMMON
    + r"""
local function upsert(q, z, n, v, field, kind, force, now)
  local rec = redis.call('HGET', q, field)
  if rec then
    local _, seq, att, _, was_forced, enq, owner = parse(rec)
    if force == '1' and was_forced == '0' then
      return  -- a user change enqueued during a force refresh stays the user's change
    end
    local ver = string.format('%d', redis.call('INCR', v))
    redis.call('HSET', q, field, pack(ver, seq, att, kind, force, enq, owner))
  else
    local ver = string.format('%d', redis.call('INCR', v))
    redis.call('HSET', q, field, pack(ver, ver, '0', kind, force, now, ''))
    redis.call('ZADD', z, now, member(ver, field))
    redis.call('HINCRBY', n, string.sub(field, 1, 1), 1)
  end
end

local now, force, token = ARGV[1], ARGV[2], ARGV[3]
local staging = false
if token ~= '' then
  if redis.call('GET', KEYS[5]) ~= token then
    return redis.error_reply('SUPERSEDED another replace_all of this connector started')
  end
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
  for i = 5, #ARGV, 2 do
    upsert(KEYS[6], KEYS[7], KEYS[8], KEYS[4], ARGV[i], ARGV[i + 1], force, now)
  end
  staging = true
else
  local mirror = redis.call('EXISTS', KEYS[5]) == 1
  for i = 5, #ARGV, 2 do
    upsert(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[i], ARGV[i + 1], force, now)
    if mirror then
      upsert(KEYS[6], KEYS[7], KEYS[8], KEYS[4], ARGV[i], ARGV[i + 1], force, now)
    end
  end
  staging = mirror
end
if staging then
  local pttl = redis.call('PTTL', KEYS[5])
  if pttl > 0 then
    for i = 6, 8 do redis.call('PEXPIRE', KEYS[i], pttl) end
  end
end
return 1
"""
)

#: KEYS q z lt; ARGV now deadline owner limit replay_ms.
LEASE: Final = (
    _COMMON
    + r"""
local saved = redis.call('GET', KEYS[3])
if saved then
  return cmsgpack.unpack(saved)
end
local members = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[4])
local out = {}
for first = 1, #members, CHUNK do
  local last = math.min(first + CHUNK - 1, #members)
  local fields = {}
  for i = first, last do
    fields[#fields + 1] = string.sub(members[i], 17)
  end
  local recs = redis.call('HMGET', KEYS[1], unpack(fields))
  local hset, zadd, gone = {}, {}, {}
  for j, field in ipairs(fields) do
    local m = members[first + j - 1]
    if recs[j] then
      local ver, seq, att, kind, force, enq = parse(recs[j])
      att = string.format('%d', tonumber(att) + 1)
      hset[#hset + 1] = field
      hset[#hset + 1] = pack(ver, seq, att, kind, force, enq, ARGV[3])
      zadd[#zadd + 1] = ARGV[2]
      zadd[#zadd + 1] = m
      out[#out + 1] = field
      out[#out + 1] = ver
      out[#out + 1] = att
      out[#out + 1] = kind
      out[#out + 1] = force
    else
      gone[#gone + 1] = m
    end
  end
  if #hset > 0 then
    redis.call('HSET', KEYS[1], unpack(hset))
    redis.call('ZADD', KEYS[2], unpack(zadd))
  end
  if #gone > 0 then
    redis.call('ZREM', KEYS[2], unpack(gone))
  end
end
if #out > 0 then
  redis.call('SET', KEYS[3], cmsgpack.pack(out), 'PX', ARGV[5])
end
return out
"""
)

# The fenced writers: the leases that are still held (same owner, deadline not passed), found
# with one HMGET and one ZMSCORE per chunk (ZMSCORE needs Redis 6.2).
_HELD: Final = r"""
local now = tonumber(ARGV[1])
local function held(first_arg, step, each)
  local fields, rest = {}, {}
  for i = first_arg, #ARGV, step do
    fields[#fields + 1] = ARGV[i]
    rest[#rest + 1] = i
  end
  for first = 1, #fields, CHUNK do
    local last = math.min(first + CHUNK - 1, #fields)
    local chunk = {}
    for i = first, last do chunk[#chunk + 1] = fields[i] end
    local recs = redis.call('HMGET', KEYS[1], unpack(chunk))
    local found, members = {}, {}
    for j, field in ipairs(chunk) do
      if recs[j] then
        local ver, seq, att, kind, force, enq, owner = parse(recs[j])
        local arg = rest[first + j - 1]
        if owner == ARGV[arg + step - 1] then
          local m = member(seq, field)
          members[#members + 1] = m
          found[#found + 1] = {field, m, arg, ver, seq, att, kind, force, enq}
        end
      end
    end
    if #members > 0 then
      local scores = redis.call('ZMSCORE', KEYS[2], unpack(members))
      for j, f in ipairs(found) do
        local score = tonumber(scores[j])
        if score and score > now then
          each(f)
        end
      end
    end
  end
end
"""

#: KEYS q z n; ARGV now, then (field, version, owner) triples.
ACK: Final = (
    _COMMON
    + _HELD
    + r"""
local hdel, zrem, hset, zadd, dec = {}, {}, {}, {}, {}
held(2, 3, function(f)
  local field, m, arg, ver = f[1], f[2], f[3], f[4]
  if ver == ARGV[arg + 1] then
    hdel[#hdel + 1] = field
    zrem[#zrem + 1] = m
    local code = string.sub(field, 1, 1)
    dec[code] = (dec[code] or 0) + 1
  else
    -- a newer version arrived while leased: back in line at once
    hset[#hset + 1] = field
    hset[#hset + 1] = pack(ver, f[5], f[6], f[7], f[8], f[9], '')
    zadd[#zadd + 1] = ARGV[1]
    zadd[#zadd + 1] = m
  end
end)
for first = 1, #hdel, CHUNK do
  local last = math.min(first + CHUNK - 1, #hdel)
  redis.call('HDEL', KEYS[1], unpack(hdel, first, last))
  redis.call('ZREM', KEYS[2], unpack(zrem, first, last))
end
for first = 1, #hset, 2 * CHUNK do
  local last = math.min(first + 2 * CHUNK - 1, #hset)
  redis.call('HSET', KEYS[1], unpack(hset, first, last))
  redis.call('ZADD', KEYS[2], unpack(zadd, first, last))
end
for code, n in pairs(dec) do
  redis.call('HINCRBY', KEYS[3], code, -n)
end
return #hdel
"""
)

#: KEYS q z; ARGV now at mode ('release' or 'extend'), then (field, owner) pairs.
MOVE: Final = (
    _COMMON
    + _HELD
    + r"""
local release = ARGV[3] == 'release'
local hset, zadd = {}, {}
held(4, 2, function(f)
  if release then
    hset[#hset + 1] = f[1]
    hset[#hset + 1] = pack(f[4], f[5], f[6], f[7], f[8], f[9], '')
  end
  zadd[#zadd + 1] = ARGV[2]
  zadd[#zadd + 1] = f[2]
end)
for first = 1, #zadd, 2 * CHUNK do
  local last = math.min(first + 2 * CHUNK - 1, #zadd)
  if release then
    redis.call('HSET', KEYS[1], unpack(hset, first, last))
  end
  redis.call('ZADD', KEYS[2], unpack(zadd, first, last))
end
return #zadd / 2
"""
)

#: KEYS q z; ARGV start stop. Returns the set's size, then (member, score, record) triples.
PEEK: Final = r"""
local out = {redis.call('ZCARD', KEYS[2])}
local ms = redis.call('ZRANGE', KEYS[2], ARGV[1], ARGV[2], 'WITHSCORES')
for i = 1, #ms, 2 do
  local rec = redis.call('HGET', KEYS[1], string.sub(ms[i], 17))
  if rec then
    out[#out + 1] = ms[i]
    out[#out + 1] = ms[i + 1]
    out[#out + 1] = rec
  end
end
return out
"""

#: KEYS st sq sz sn; ARGV token ttl_ms.
BEGIN: Final = r"""
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: KEYS st sq sz sn q z n done; ARGV token count.
SWAP: Final = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  local done = redis.call('GET', KEYS[8])
  if done then
    return done
  end
  return redis.error_reply('SUPERSEDED another replace_all of this connector started')
end
for i = 0, 2 do
  local src, dst = KEYS[2 + i], KEYS[5 + i]
  if redis.call('EXISTS', src) == 1 then
    redis.call('RENAME', src, dst)
    redis.call('PERSIST', dst)
  else
    redis.call('DEL', dst)
  end
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[8], ARGV[2], 'PX', 60000)
return ARGV[2]
"""
