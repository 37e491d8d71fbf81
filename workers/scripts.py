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

# Finish the jobs that worker slots just performed and claim their next ones, for any number of
# slots in one step: while a queue is busy a worker process makes one round trip per batch of jobs.
# For each slot, the finished job (if any) is counted and its in-flight record cleared; then the
# first job in priority order is popped and recorded as the slot's in-flight job. The record embeds
# the job's raw bytes as its last member, so the job can be lifted back out unchanged (a job that is
# not JSON is embedded as a JSON string).
# KEYS: stat:processed; then per slot: worker record, stat:processed:<id>, retry state; then the
#       queue lists in priority order.
# ARGV: run_at, slot count; then per slot: worker name, finished job's raw bytes ('' when only
#       claiming); then the queue names (same order as the lists).
# Returns per slot {finished, queue, raw, waiting}, or {finished} when every queue is empty; finished
# is 1 when the finished job was counted and 0 when its record had gone (dead-worker recovery pushed
# it back); waiting is how many jobs are left in the claimed job's queue (0 for a job handed out
# again), so that the worker can set idle slots on them.
# The step may run twice (a client sends it again when the answer was lost with the connection), so
# a record that is not the finished job's is the job this step claimed the first time: it is handed
# out again rather than overwritten. The same holds for a record left under this worker id by an
# earlier process with the same host and pid. One case stays ambiguous: when that re-sent step's
# claimed job has exactly the finished job's bytes, it is taken for the finished one and counted
# without being performed; payq's payment jobs carry their payment id and are never identical.
FINISH_AND_CLAIM = """
local slots = tonumber(ARGV[2])
local first_queue = 3 * slots + 2
local empty = false

local function lift(record)
  local ok, r = pcall(cjson.decode, record)
  local at = string.find(record, ',"payload":', 1, true)
  if not (ok and type(r) == 'table' and type(r.queue) == 'string' and at) then return nil end
  local raw = r.payload
  if type(raw) ~= 'string' then raw = string.sub(record, at + 11, -2) end
  return r.queue, raw
end

local function settle(record_key, counter_key, state_key, finished)
  local record = redis.call('GET', record_key)
  if not record or finished == '' then return 0, record end
  local tail = ',"payload":' .. finished .. '}'
  local mine = string.sub(record, -#tail) == tail
  if not mine then
    tail = ',"payload":' .. cjson.encode(finished) .. '}'
    mine = string.sub(record, -#tail) == tail
  end
  if not mine then return 1, record end
  redis.call('DEL', record_key, state_key)
  redis.call('INCR', KEYS[1])
  redis.call('INCR', counter_key)
  return 1, false
end

local function claim(record_key, name)
  if empty then return nil end
  for i = first_queue, #KEYS do
    local raw = redis.call('LPOP', KEYS[i])
    if raw then
      local queue = ARGV[i - first_queue + 2 * slots + 3]
      local ok, decoded = pcall(cjson.decode, raw)
      local payload = raw
      if not ok or type(decoded) ~= 'table' then payload = cjson.encode(raw) end
      redis.call('SET', record_key, '{"queue":' .. cjson.encode(queue) .. ',"run_at":' .. cjson.encode(ARGV[1])
        .. ',"worker":' .. cjson.encode(name) .. ',"payload":' .. payload .. '}')
      return queue, raw, redis.call('LLEN', KEYS[i])
    end
  end
  empty = true
  return nil
end

local results = {}
for s = 1, slots do
  local record_key = KEYS[3 * s - 1]
  local finished, record = settle(record_key, KEYS[3 * s], KEYS[3 * s + 1], ARGV[2 * s + 2])
  local queue, raw, waiting = nil, nil, 0
  if record then queue, raw = lift(record) end
  if not queue then queue, raw, waiting = claim(record_key, ARGV[2 * s + 1]) end
  if queue then results[s] = {finished, queue, raw, waiting} else results[s] = {finished} end
end
return results
"""

# Put a slot's unfinished job back at the head of its queue, unless someone already did (the record
# is gone). The job is lifted out of the in-flight record byte for byte, so it is whichever job the
# record holds even when the worker did not hear back from the step that claimed it.
# KEYS: worker record, queues set.  ARGV: queue key prefix, wake channel.
# Returns 1 when a job was pushed back, 0 when there was none, -1 when the record is unreadable (it
# is left for an operator).
REQUEUE = """
local record = redis.call('GET', KEYS[1])
if not record then return 0 end
local ok, r = pcall(cjson.decode, record)
local at = string.find(record, ',"payload":', 1, true)
if not (ok and type(r) == 'table' and type(r.queue) == 'string' and at) then return -1 end
redis.call('DEL', KEYS[1])
local raw = r.payload
if type(raw) ~= 'string' then raw = string.sub(record, at + 11, -2) end
redis.call('SADD', KEYS[2], r.queue)
redis.call('LPUSH', ARGV[1] .. r.queue, raw)
redis.call('PUBLISH', ARGV[2], r.queue)
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
