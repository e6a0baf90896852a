-- wrk script: POST /cpaas/v1/messages with a bearer token from the TOKEN environment variable.
local token = os.getenv("TOKEN")
local numbers = { "+14155552671", "+447911123456", "+33612345678", "+4915123456789" }
local n = 0

request = function()
  n = n + 1
  local body = string.format(
    '{"channel":"SMS","recipient":"%s","message_body":"Your code is %06d"}',
    numbers[(n % #numbers) + 1], n % 1000000)
  return wrk.format("POST", "/cpaas/v1/messages", {
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. token,
  }, body)
end

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write("RESULT requests=", summary.requests, " duration_us=", summary.duration,
    " errors_status=", summary.errors.status, " errors_connect=", summary.errors.connect,
    " errors_timeout=", summary.errors.timeout,
    " p50_us=", latency:percentile(50), " p99_us=", latency:percentile(99),
    " max_us=", latency.max, "\n")
end
