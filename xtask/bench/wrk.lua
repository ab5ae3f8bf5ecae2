-- wrk script for `cargo xtask bench`: one request, repeated, and a JSON summary on stdout.
-- Arguments (after `--`): METHOD PATH EXPECTED_STATUS [HEADER=VALUE]... [@BODY]
-- The summary counts answers by status, so the harness can check that every answer was the
-- expected one, and gives latency percentiles in microseconds.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local method, path = args[1], args[2]
   local headers, body = {}, nil
   for i = 4, #args do
      local arg = args[i]
      if arg:sub(1, 1) == "@" then
         body = arg:sub(2)
      else
         local name, value = arg:match("^([^=]+)=(.*)$")
         headers[name] = value
      end
   end
   prepared = wrk.format(method, path, headers, body)
   counts = {}
end

function request()
   return prepared
end

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
   local statuses = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("counts")) do
         statuses[status] = (statuses[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(statuses) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   local errors = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"socket_errors": %d, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      errors.connect + errors.read + errors.write + errors.timeout,
      table.concat(parts, ", ")))
end
