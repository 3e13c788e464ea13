"""Lua scripts: each moves one delivery between owners atomically, so no crash between two commands
can lose a task or count it twice.

Fields of a task entry: ``t`` task id, ``c`` cycle, ``p`` payload, ``r`` results stream key, ``s``
session, ``n`` how many workers died holding it. Result entries: ``t``, ``c`` and either ``o`` (the
outcome payload) or ``dl`` (dead-lettered after ``dl`` worker deaths; ``w`` the last consumer).

The scripts write result streams named inside entries (not declared in KEYS): fine on one Redis
server, not on Redis Cluster.
"""

from __future__ import annotations

# KEYS[1] tasks stream. ARGV[1] group, then per item: id, results key, task id, cycle, outcome.
# Acknowledge, delete, and post the outcome, but only to a results stream that still exists: a
# missing one means its group ended (or its submitter is gone) and nobody will read it.
COMPLETE = """
local stream, group = KEYS[1], ARGV[1]
local live = {}
local posted = 0
for i = 2, #ARGV, 5 do
  local id, rkey = ARGV[i], ARGV[i + 1]
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  local ok = live[rkey]
  if ok == nil then
    ok = redis.call('EXISTS', rkey) == 1
    live[rkey] = ok
  end
  if ok then
    redis.call('XADD', rkey, '*', 't', ARGV[i + 2], 'c', ARGV[i + 3], 'o', ARGV[i + 4])
    posted = posted + 1
  end
end
return posted
"""

# KEYS[1] tasks stream. ARGV[1] group, ARGV[2..] ids. Give deliveries back as new entries that any
# consumer reads next (a graceful shutdown), keeping their death count.
RELEASE = """
local stream, group = KEYS[1], ARGV[1]
local moved = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local entry = redis.call('XRANGE', stream, id, id)
  redis.call('XACK', stream, group, id)
  if #entry > 0 then
    redis.call('XADD', stream, '*', unpack(entry[1][2]))
    redis.call('XDEL', stream, id)
    moved = moved + 1
  end
end
return moved
"""

# KEYS[1] tasks stream, KEYS[2] the consumer's heartbeat key, KEYS[3] dead-letter stream, KEYS[4] the
# dead-letter counter (a running total that monitoring reads: the stream itself is capped).
# ARGV[1] group, ARGV[2] consumer, ARGV[3] max deliveries, ARGV[4] batch size, ARGV[5] dead-letter
# maxlen, ARGV[6] dead-letter ttl, ARGV[7] worker timeout (ms).
# A consumer is dead when its heartbeat key is gone and it has not read for the worker timeout
# either, both checked here, inside the script: a worker that came back in between keeps its work,
# and right after Redis lost its data (heartbeats gone, consumers recreated by their next read) no
# live worker is taken for dead. Each held task is requeued with one more death, or dead-lettered
# at max deliveries: its group then fails instead of the task killing worker after worker.
# Returns {requeued, dead_lettered}.
RECLAIM = """
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0} end
local idle = nil
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
  local name, ms = nil, nil
  for i = 1, #info, 2 do
    if info[i] == 'name' then name = info[i + 1] elseif info[i] == 'idle' then ms = info[i + 1] end
  end
  if name == consumer then idle = ms end
end
if idle == nil or idle < tonumber(ARGV[7]) then return {0, 0} end
local limit, batch = tonumber(ARGV[3]), tonumber(ARGV[4])
local pending = redis.call('XPENDING', stream, group, '-', '+', batch, consumer)
local requeued, dead = 0, 0
for _, p in ipairs(pending) do
  local id = p[1]
  local entry = redis.call('XRANGE', stream, id, id)
  redis.call('XACK', stream, group, id)
  if #entry > 0 then
    local fields = entry[1][2]
    local deaths, rkey, task, cycle = 0, nil, '', ''
    local out = {}
    for i = 1, #fields, 2 do
      local f, v = fields[i], fields[i + 1]
      if f == 'n' then deaths = tonumber(v) or 0
      else
        out[#out + 1] = f
        out[#out + 1] = v
        if f == 'r' then rkey = v elseif f == 't' then task = v elseif f == 'c' then cycle = v end
      end
    end
    deaths = deaths + 1
    out[#out + 1] = 'n'
    out[#out + 1] = tostring(deaths)
    if deaths >= limit then
      out[#out + 1] = 'w'
      out[#out + 1] = consumer
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(out))
      redis.call('EXPIRE', KEYS[3], ARGV[6])
      if rkey and redis.call('EXISTS', rkey) == 1 then
        redis.call('XADD', rkey, '*', 't', task, 'c', cycle, 'dl', tostring(deaths), 'w', consumer)
      end
      dead = dead + 1
    else
      redis.call('XADD', stream, '*', unpack(out))
      requeued = requeued + 1
    end
    redis.call('XDEL', stream, id)
  end
end
if dead > 0 then
  redis.call('INCRBY', KEYS[4], dead)
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
if #pending < batch then
  redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
end
return {requeued, dead}
"""
