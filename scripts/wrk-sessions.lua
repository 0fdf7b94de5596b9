-- wrk script for scripts/bench-sessions.sh: POST /v1/sessions with a new-session body
-- (text/plain JSON, as the DNI script sends it), utm parameters varying per request.
--
-- Environment: SITE_KEY (default bench-site-key-0001), ORIGIN (default http://127.0.0.1).
-- done() prints one line that the shell script parses:
--   WRK_RESULT requests=N ok=N non2xx=N errors=N duration_us=N rps=N p50_us=N p99_us=N p999_us=N

local site_key = os.getenv("SITE_KEY") or "bench-site-key-0001"
local origin = os.getenv("ORIGIN") or "http://127.0.0.1"

local sources = { "google", "newsletter", "facebook", "bing", "flyer", "linkedin", "" }
local mediums = { "cpc", "email", "social", "organic", "print", "" }
local referrers = {
	"https://www.google.com/", "https://www.bing.com/", "https://www.facebook.com/",
	"https://news.example/article/12", "",
}

local threads = {}
local thread_id = 0

function setup(thread)
	thread_id = thread_id + 1
	thread:set("id", thread_id)
	table.insert(threads, thread)
end

-- Per thread: a ring of prebuilt requests, so that the load generator spends its CPU on
-- sending, not on string building (it shares the machine with the server).
local ring = {}
local ring_size = 1024
local next_req = 0
ok = 0
non2xx = 0

function init(args)
	local tid = id or 1
	local headers = { ["Content-Type"] = "text/plain;charset=UTF-8", ["Origin"] = origin }
	for i = 1, ring_size do
		local n = tid * 100000 + i
		local src = sources[(n % #sources) + 1]
		local med = mediums[(n % #mediums) + 1]
		local q = "?utm_campaign=c" .. (n % 97) .. "&utm_term=kw" .. n
		if src ~= "" then q = q .. "&utm_source=" .. src end
		if med ~= "" then q = q .. "&utm_medium=" .. med end
		if n % 5 == 0 then q = q .. "&gclid=Cj0KCQ" .. n end
		local body = string.format(
			'{"site_key":"%s","landing_url":"https://shop.example/p/%d%s","referrer":"%s"}',
			site_key, n % 50, q, referrers[(n % #referrers) + 1])
		ring[i] = wrk.format("POST", "/v1/sessions", headers, body)
	end
end

function request()
	next_req = (next_req % ring_size) + 1
	return ring[next_req]
end

function response(status, headers, body)
	if status >= 200 and status < 300 then
		ok = ok + 1
	else
		non2xx = non2xx + 1
	end
end

function done(summary, latency, requests)
	local ok_total, non2xx_total = 0, 0
	for _, t in ipairs(threads) do
		ok_total = ok_total + (t:get("ok") or 0)
		non2xx_total = non2xx_total + (t:get("non2xx") or 0)
	end
	local e = summary.errors
	local errors = e.connect + e.read + e.write + e.timeout
	local secs = summary.duration / 1e6
	io.write(string.format(
		"WRK_RESULT requests=%d ok=%d non2xx=%d errors=%d duration_us=%d rps=%.0f p50_us=%d p99_us=%d p999_us=%d\n",
		summary.requests, ok_total, non2xx_total, errors, summary.duration,
		ok_total / secs, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
