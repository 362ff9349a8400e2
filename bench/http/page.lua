-- wrk: GET a page or a JSON resource with the caller's credentials, for bench_screens.py.
-- BENCH_AUTH: the Authorization header (the API's bearer token) or "";
-- BENCH_COOKIE: the Cookie header (a screen's session) or "";
-- BENCH_ACCEPT: the Accept header; BENCH_IDS: when set, a random id in [1, BENCH_IDS]
-- is appended to the path (a record page, or a related list's "account=" filter).
local auth = os.getenv("BENCH_AUTH") or ""
local cookie = os.getenv("BENCH_COOKIE") or ""
local accept = os.getenv("BENCH_ACCEPT") or "application/json"
local ids = tonumber(os.getenv("BENCH_IDS") or "0")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (number or 0))
end

function request()
  local headers = {Accept = accept}
  if auth ~= "" then headers["Authorization"] = auth end
  if cookie ~= "" then headers["Cookie"] = cookie end
  local path = wrk.path
  if ids > 0 then path = path .. math.random(1, ids) end
  return wrk.format("GET", path, headers)
end
