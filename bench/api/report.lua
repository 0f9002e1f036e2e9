-- report.lua: the done() every bench/api scenario script shares (loaded with dofile).
--
-- Prints one machine-readable line that run.sh parses instead of wrk's human summary:
--   BENCH requests=N duration_us=N rps=F p50_us=F p99_us=F non2xx=N sock_errors=N bad=N first_bad=S
-- non2xx is wrk's own count (HTTP status > 399). bad/first_bad come from scripts that check every
-- status themselves (create.lua wants 201 exactly); others report bad=0 and first_bad=-.

-- wrk.thread objects from setup(), so done() can read per-thread globals ("bad", "first_bad").
bench_threads = {}

function setup(thread)
   thread:set("id", #bench_threads)
   table.insert(bench_threads, thread)
end

function done(summary, latency, requests)
   local bad, first_bad = 0, "-"
   for _, t in ipairs(bench_threads) do
      bad = bad + (t:get("bad") or 0)
      local fb = t:get("first_bad")
      if fb and first_bad == "-" then
         first_bad = fb
      end
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%.1f p99_us=%.1f non2xx=%d sock_errors=%d bad=%d first_bad=%s\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(99), e.status,
      e.connect + e.read + e.write + e.timeout, bad,
      -- one token: run.sh splits the line on spaces
      (first_bad:gsub("%s+", "_"))))
end
