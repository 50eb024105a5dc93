-- wrk script for `make bench`: POST /v1/surveys, one unique survey answer per request.
--
--   NPSD_TOKEN=tk_... BENCH_TAG=main wrk -t2 -c64 -d15s --latency -s bench/ingest.lua \
--       http://127.0.0.1:PORT/v1/surveys
--
-- NPSD_TOKEN  bearer token of an `ingest` key (the no-op server ignores it)
-- BENCH_TAG   prefix of every response_id, so that several runs against one database never
--             collide (a repeated response_id would be a 200 retry, not a new row);
--             default: the current time
--
-- Bodies: response_id "<tag>-<thread>-<n>" (unique across threads and runs), a customer
-- of their own per answer ("C-<tag>-<thread>-<n>", phone "+316" and 8 digits), touchpoint
-- cycling claim/purchase/renewal, score 0-8 for 8 answers in 10 (owed a callback with the
-- default callbacks.max_score = 8) and 9 or 10 for the other 2, a short comment, consent.
--
-- done() prints the responses per status, wrk's latency percentiles and one machine-readable
-- "BENCH ..." line that bench/run.sh parses.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local token = os.getenv("NPSD_TOKEN") or "none"
local tag = os.getenv("BENCH_TAG") or tostring(os.time())
local touchpoints = { "claim", "purchase", "renewal" }
local channels = { "web", "app", "email" }
local comments = {
   "Took three weeks to pay out",
   "Friendly on the phone, slow by mail",
   "Easy to buy online",
   "Had to explain my case twice",
   "Renewal price went up without notice",
}
local headers = {
   ["Authorization"] = "Bearer " .. token,
   ["Content-Type"] = "application/json",
}

-- per-thread state (each wrk thread has its own Lua state; tid is set by setup())
local n = 0
sent = 0
received = 0
statuses = {}

function init(args)
   tid = tid or 0
end

function request()
   n = n + 1
   sent = sent + 1
   local d = n % 10
   local score
   if d < 8 then
      score = (n * 7 + tid) % 9 -- 0..8: owed a callback
   else
      score = 9 + (n % 2)       -- 9 or 10
   end
   local body = string.format(
      '{"response_id":"%s-%d-%d",' ..
      '"customer":{"id":"C-%s-%d-%d","phone":"+316%08d","language":"nl"},' ..
      '"touchpoint":"%s","channel":"%s","score":%d,"comment":"%s","contact_consent":true}',
      tag, tid, n,
      tag, tid, n, (tid * 10000019 + n) % 100000000,
      touchpoints[n % 3 + 1], channels[n % 3 + 1], score, comments[n % 5 + 1])
   return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
   received = received + 1
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   local sent_all, received_all = 0, 0
   for _, t in ipairs(threads) do
      sent_all = sent_all + (t:get("sent") or 0)
      received_all = received_all + (t:get("received") or 0)
      local st = t:get("statuses") or {}
      for code, count in pairs(st) do
         total[code] = (total[code] or 0) + count
      end
   end
   local codes = {}
   for code in pairs(total) do table.insert(codes, code) end
   table.sort(codes)
   local ok2xx, non2xx, s201 = 0, 0, total[201] or 0
   for _, code in ipairs(codes) do
      io.write(string.format("status %d: %d\n", code, total[code]))
      if code >= 200 and code < 300 then
         ok2xx = ok2xx + total[code]
      else
         non2xx = non2xx + total[code]
      end
   end
   io.write(string.format("non2xx: %d\n", non2xx))
   local secs = summary.duration / 1e6
   local rps = summary.requests / secs
   local p50 = latency:percentile(50) / 1000
   local p90 = latency:percentile(90) / 1000
   local p99 = latency:percentile(99) / 1000
   local e = summary.errors
   -- requests written but never answered: in flight when wrk's clock ran out, or lost to
   -- a socket error. The server may still have stored those.
   local unanswered = sent_all - received_all
   io.write(string.format("latency p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
                          p50, p90, p99, latency.max / 1000))
   io.write(string.format("sent %d, answered %d, unanswered %d; socket errors: connect %d, " ..
                          "read %d, write %d, timeout %d\n",
                          sent_all, received_all, unanswered,
                          e.connect, e.read, e.write, e.timeout))
   io.write(string.format("BENCH requests=%d seconds=%.3f rps=%.0f s201=%d ok2xx=%d " ..
                          "non2xx=%d sent=%d unanswered=%d p50_ms=%.2f p90_ms=%.2f " ..
                          "p99_ms=%.2f errors=%d\n",
                          summary.requests, secs, rps, s201, ok2xx, non2xx, sent_all,
                          unanswered, p50, p90, p99,
                          e.connect + e.read + e.write + e.timeout))
end
