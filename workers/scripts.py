"""The Lua scripts that make payq's multi-step Redis changes atomic.

Each script is one step that either happens whole or not at all, which is what lets payq promise
that a popped job is never lost and a dead worker's job is pushed back exactly once.
"""

from __future__ import annotations

# KEYS: queues set, queue list.  ARGV: queue name, raw job, wake channel.
ENQUEUE = """
redis.call('SADD', KEYS[1], ARGV[1])
local n = redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return n
"""

# Pop the first job in priority order and record it as in flight, in one step.
# KEYS: worker record, queue lists in priority order.
# ARGV: worker name, run_at, queue names (same order as the lists).
# The record embeds the job's raw bytes as its last member, so the job can be lifted back out
# unchanged; a job that is not JSON is embedded as a JSON string.
CLAIM = """
for i = 2, #KEYS do
  local raw = redis.call('LPOP', KEYS[i])
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    local payload = raw
    if not ok or type(decoded) ~= 'table' then payload = cjson.encode(raw) end
    local record = '{"queue":' .. cjson.encode(ARGV[i + 1]) .. ',"run_at":' .. cjson.encode(ARGV[2])
      .. ',"worker":' .. cjson.encode(ARGV[1]) .. ',"payload":' .. payload .. '}'
    redis.call('SET', KEYS[1], record)
    return {i - 2, raw}
  end
end
return false
"""

# Finish a job: clear the in-flight record and count it, atomically.
# KEYS: worker record, global counter, per-worker counter, failed list.
# ARGV: failure entry to push ('' on success).
FINISH = """
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('INCR', KEYS[3])
if ARGV[1] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[1]) end
return 1
"""

# Put an unfinished job back at the head of its queue, unless someone already did.
# KEYS: worker record, queue list, queues set.  ARGV: raw job, queue name, wake channel.
REQUEUE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
"""

# Unregister a worker whose heartbeat stopped, and deal with its in-flight job, exactly once.
# KEYS: workers set, worker record, started, ping, heartbeat hash, processed:<id>, failed:<id>,
#       failed list, queues set.
# ARGV: worker id, now (unix s), timeout (s), namespace prefix for queue keys ('<ns>:queue:'),
#       wake channel, failed_at, host.
# A payq worker's job goes back to the head of its queue. Another client's record may hold a
# re-encoded payload (node-resque's cjson copy turns [] into {}), so that job is not re-run
# blindly: it becomes a failure entry that an operator can retry.
RECOVER = """
local ping = redis.call('GET', KEYS[4])
if not ping then return -1 end
local ok, p = pcall(cjson.decode, ping)
if not ok or type(p) ~= 'table' or type(p.time) ~= 'number' then return -1 end
if tonumber(ARGV[2]) - p.time < tonumber(ARGV[3]) then return -2 end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then
  redis.call('DEL', KEYS[4])
  return 0
end
local record = redis.call('GET', KEYS[2])
local result = 1
if record then
  local rok, r = pcall(cjson.decode, record)
  if rok and type(r) == 'table' and type(r.queue) == 'string' and r.payload ~= nil then
    local at = string.find(record, ',"payload":', 1, true)
    if p.payq and at then
      -- payq writes the payload last and raw: lift it out byte for byte.
      redis.call('LPUSH', ARGV[4] .. r.queue, string.sub(record, at + 11, -2))
      redis.call('SADD', KEYS[9], r.queue)
      redis.call('PUBLISH', ARGV[5], r.queue)
      result = 2
    else
      -- cjson writes '/' as '\\/'; JSON.stringify does not, and node-resque finds failures by
      -- their re-serialised text, so the entry must carry plain slashes (failed_at has two).
      local function js(value) return (string.gsub(cjson.encode(value), '\\\\/', '/')) end
      local entry = '{"failed_at":' .. js(ARGV[6]) .. ',"payload":' .. js(r.payload)
        .. ',"exception":"DeadWorker","error":' .. js('worker ' .. ARGV[1]
        .. ' stopped sending heartbeats while processing a job')
        .. ',"backtrace":' .. js({'recovered by payq on ' .. ARGV[7]})
        .. ',"worker":' .. js(ARGV[1]) .. ',"queue":' .. js(r.queue) .. '}'
      redis.call('RPUSH', KEYS[8], entry)
      result = 3
    end
  end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7])
redis.call('HDEL', KEYS[5], ARGV[1])
return result
"""

# Move a failure entry back onto its queue, if it is still in the failed list.
# KEYS: failed list, queue list, queues set.  ARGV: raw entry, raw job, queue name, wake channel.
RETRY_FAILED = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1
"""

# Enqueue a job unless its unique key was seen within the retention: the check and the push are
# one step, so concurrent producers of the same job enqueue it exactly once.
# KEYS: unique key, queues set, queue list.  ARGV: queue name, raw job, retention (s), wake channel.
ENQUEUE_UNIQUE = """
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"""
