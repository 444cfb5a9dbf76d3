-- wrk script for the kv benchmark (bench/kv/run.sh drives it; not meant to be run by hand).
--
-- One script serves both systems and both operations, chosen through the environment:
--   BENCH_TARGET       etcd | ddialab
--   BENCH_OP           put | get
--   BENCH_THREAD_BASE  integer added to the wrk thread number (1, 2, ...) to form the key's thread id,
--                      so that every pass of a run writes keys no other pass wrote
--   BENCH_GET_KEYS     number of preloaded keys that GET cycles over (default 1000), named g-%08d
--   BENCH_VALUE_BYTES  PUT value size (default 256)
--   BENCH_OUT          file that done() writes one JSON object to (the pass's result)
--
-- PUT writes a new key per request: k<thread id>-<per-thread counter as %08d>.
--   etcd:    POST /v3/kv/put    {"key":"<base64>","value":"<base64>"}   (JSON gateway)
--   ddialab: PUT  /kv/<key>     raw value as the body
-- GET reads an existing key:
--   etcd:    POST /v3/kv/range  {"key":"<base64>"}                     (linearizable, the default)
--   ddialab: GET  /kv/<key>                                            (leader-served, the default)
--
-- response() counts every status outside 200..299 (wrk's own errors.status only counts >= 400).
-- done() reports requests/s and p50/p90/p99 from wrk's latency histogram (microseconds).

local target = os.getenv("BENCH_TARGET") or "etcd"
local op = os.getenv("BENCH_OP") or "put"
local thread_base = tonumber(os.getenv("BENCH_THREAD_BASE") or "0")
local get_keys = tonumber(os.getenv("BENCH_GET_KEYS") or "1000")
local value_bytes = tonumber(os.getenv("BENCH_VALUE_BYTES") or "256")
local out_path = os.getenv("BENCH_OUT")

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64_char = {}
for i = 1, 64 do
    b64_char[i - 1] = B64:sub(i, i)
end

-- Standard base64 (RFC 4648, with padding), arithmetic only so it needs no bit library.
local function base64(s)
    local out = {}
    local n = #s
    for i = 1, n, 3 do
        local a, b, c = s:byte(i, i + 2)
        local triple = a * 65536 + (b or 0) * 256 + (c or 0)
        local c1 = math.floor(triple / 262144) % 64
        local c2 = math.floor(triple / 4096) % 64
        local c3 = math.floor(triple / 64) % 64
        local c4 = triple % 64
        out[#out + 1] = b64_char[c1] .. b64_char[c2] .. (b and b64_char[c3] or "=") .. (c and b64_char[c4] or "=")
    end
    return table.concat(out)
end

local value = string.rep("v", value_bytes)
local value64 = base64(value)

-- Main-state bookkeeping: setup() runs once per wrk thread, in the main Lua state.
local threads = {}
local next_thread = 1

function setup(thread)
    thread:set("tid", thread_base + next_thread)
    thread:set("thread_no", next_thread)
    next_thread = next_thread + 1
    threads[#threads + 1] = thread
end

-- Thread-state globals (each wrk thread has its own Lua state).
counter = 0
non2xx = 0
status_seen = {}

local put_headers = nil
local get_headers = nil

function init(args)
    if target == "etcd" then
        put_headers = { ["Content-Type"] = "application/json" }
        get_headers = put_headers
    else
        put_headers = { ["Content-Type"] = "application/octet-stream" }
        get_headers = {}
    end
end

function request()
    counter = counter + 1
    if op == "put" then
        local key = string.format("k%d-%08d", tid, counter)
        if target == "etcd" then
            local body = '{"key":"' .. base64(key) .. '","value":"' .. value64 .. '"}'
            return wrk.format("POST", "/v3/kv/put", put_headers, body)
        end
        return wrk.format("PUT", "/kv/" .. key, put_headers, value)
    end
    -- Spread the threads over the key set so they do not read in lockstep.
    local key = string.format("g-%08d", (thread_no * 7919 + counter) % get_keys)
    if target == "etcd" then
        return wrk.format("POST", "/v3/kv/range", get_headers, '{"key":"' .. base64(key) .. '"}')
    end
    return wrk.format("GET", "/kv/" .. key, get_headers, nil)
end

function response(status, headers, body)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
        status_seen[status] = (status_seen[status] or 0) + 1
    end
end

function done(summary, latency, requests)
    local bad = 0
    local by_code = {}
    for _, t in ipairs(threads) do
        bad = bad + (t:get("non2xx") or 0)
        for code, n in pairs(t:get("status_seen") or {}) do
            by_code[code] = (by_code[code] or 0) + n
        end
    end
    local statuses = {}
    for code, n in pairs(by_code) do
        statuses[#statuses + 1] = string.format('"%d":%d', code, n)
    end
    local e = summary.errors
    local secs = summary.duration / 1e6
    local json = string.format(
        '{"requests":%d,"duration_s":%.3f,"rps":%.2f,"bytes":%d,'
            .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,"max_ms":%.3f,'
            .. '"non2xx":%d,"statuses":{%s},'
            .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}',
        summary.requests, secs, summary.requests / secs, summary.bytes,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
        latency.mean / 1000, latency.max / 1000,
        bad, table.concat(statuses, ","),
        e.connect, e.read, e.write, e.status, e.timeout)
    if out_path then
        local f = assert(io.open(out_path, "w"))
        f:write(json, "\n")
        f:close()
    else
        io.write(json, "\n")
    end
end
