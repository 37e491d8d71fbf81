"""The Lua scripts behind delayed jobs, the scheduler's leader lock and retries.

They live apart from ``workers.scripts`` because they are registered on demand (``Store.script``)
rather than by ``Store``. Each one is a single atomic step: a delayed job is never half written, a
due job is never popped without being pushed, and a finished job's outcome (processed, retried
later, or failed for good) is recorded whole.
"""

from __future__ import annotations

# Store a job for later in resque-scheduler's layout, refusing a duplicate at the same second
# unless told otherwise (node-resque's enqueueAt refuses too).
# KEYS: schedule zset, delayed:<ts> list, timestamps:<job> set.
# ARGV: raw job, ts, 'delayed:<ts>', allow duplicate ('1' or '0').
ENQUEUE_AT = """
if ARGV[4] ~= '1' and redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 1 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[2])
return 1
"""

# Remove every copy of one delayed job (by its raw bytes) from one timestamp, and drop the
# timestamp when nothing is left at it.
# KEYS: schedule zset, delayed:<ts> list, timestamps:<job> set.  ARGV: raw job, ts, 'delayed:<ts>'.
REMOVE_DELAYED = """
local n = redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
end
return n
"""

# Move up to a batch of one timestamp's jobs onto their queues. Popping and pushing happen in the
# same script, so a scheduler that dies mid-move loses nothing and doubles nothing. The stored
# bytes are pushed as they are (node-resque re-encodes them; payq keeps them). An item that names
# no queue cannot be delivered anywhere and goes to the failed list.
# KEYS: schedule zset, delayed:<ts> list, queues set, failed list.
# ARGV: ts, 'delayed:<ts>', batch size, timestamps key prefix, queue key prefix, wake channel,
#       failed_at, scheduler name.
MOVE_DUE = """
local moved = 0
for _ = 1, tonumber(ARGV[3]) do
  local raw = redis.call('LPOP', KEYS[2])
  if not raw then break end
  redis.call('SREM', ARGV[4] .. raw, ARGV[2])
  local ok, job = pcall(cjson.decode, raw)
  if ok and type(job) == 'table' and type(job.queue) == 'string' and job.queue ~= '' then
    redis.call('RPUSH', ARGV[5] .. job.queue, raw)
    redis.call('SADD', KEYS[3], job.queue)
    redis.call('PUBLISH', ARGV[6], job.queue)
    moved = moved + 1
  else
    -- cjson writes '/' as '\\/' where JSON.stringify does not; node-resque matches failures by text.
    local function js(value) return (string.gsub(cjson.encode(value), '\\\\/', '/')) end
    local payload = raw
    if not ok or type(job) ~= 'table' then payload = js(raw) end
    redis.call('RPUSH', KEYS[4], '{"failed_at":' .. js(ARGV[7]) .. ',"payload":' .. payload
      .. ',"exception":"MalformedJob","error":"delayed job names no queue","backtrace":[]'
      .. ',"worker":' .. js(ARGV[8]) .. ',"queue":""}')
  end
end
local left = redis.call('LLEN', KEYS[2])
if left == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return {moved, left}
"""

# Take or renew the leader lock: SET NX EX as node-resque does, or renew it when we hold it.
# KEYS: lock.  ARGV: our name, timeout (s).
TRY_LEAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Give up the leader lock, only if it is still ours.  KEYS: lock.  ARGV: our name.
RELEASE_LEAD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Record a finished job's outcome, unless its in-flight record is gone (dead-worker recovery
# already pushed the job back, so recording an outcome as well would double it).
# KEYS: worker record, global counter, per-worker counter, failed list, retry state, schedule zset,
#       delayed:<ts> list, timestamps:<job> set.
# ARGV: 'ok' | 'fail' | 'retry', failure entry, job to retry, ts, 'delayed:<ts>', retry state,
#       retry state TTL (s).
SETTLE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
redis.call('INCR', KEYS[3])
if ARGV[1] == 'retry' then
  redis.call('SET', KEYS[5], ARGV[6], 'EX', ARGV[7])
  redis.call('RPUSH', KEYS[7], ARGV[3])
  redis.call('SADD', KEYS[8], ARGV[5])
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[4])
  return 1
end
if ARGV[1] == 'fail' then redis.call('RPUSH', KEYS[4], ARGV[2]) end
redis.call('DEL', KEYS[5])
return 1
"""
