-- wrk script: replay pre-built requests, each once, from the file named by the first argument.
-- Each line of the file is "webhook-id TAB webhook-timestamp TAB webhook-signature TAB body".
-- With T threads (second argument), thread k sends lines k, k+T, k+2T, ... Should a thread run
-- out, it starts over and the payloads repeat; done() reports that as "wrapped".

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file, every = args[1], tonumber(args[2])
  prepared = {}
  local line_no = 0
  for line in io.lines(file) do
    if line_no % every == id then
      local webhook_id, timestamp, signature, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      prepared[#prepared + 1] = wrk.format("POST", wrk.path, {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = webhook_id,
        ["webhook-timestamp"] = timestamp,
        ["webhook-signature"] = signature,
      }, body)
    end
    line_no = line_no + 1
  end
  sent = 0
  wrapped = 0
  not_accepted = 0
end

function request()
  sent = sent + 1
  if sent > #prepared then
    sent = 1
    wrapped = 1
  end
  return prepared[sent]
end

function response(status, headers, body)
  if status ~= 202 then
    not_accepted = not_accepted + 1
  end
end

function done(summary, latency, requests)
  local wrapped_any, refused = 0, 0
  for _, thread in ipairs(threads) do
    wrapped_any = math.max(wrapped_any, thread:get("wrapped"))
    refused = refused + thread:get("not_accepted")
  end
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"not_accepted":%d,"wrapped":%d,"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, refused, wrapped_any,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
