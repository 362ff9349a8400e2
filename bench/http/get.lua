-- wrk: GET one record by a random id the caller may read.
-- BENCH_AUTH: the Authorization header ("" for none). Ids: k * STRIDE + OFFSET + j with
-- k in [0, ROWS / STRIDE), j in [0, SPAN): every id for admin (1, 1, 1), the rep's own
-- or team's rows otherwise (the fill hands rows to reps by id modulo STRIDE).
local auth = os.getenv("BENCH_AUTH") or ""
-- bench_screens.py's pages: the session's Cookie header, and Accept: text/html
local cookie = os.getenv("BENCH_COOKIE") or ""
local accept = os.getenv("BENCH_ACCEPT") or ""
local rows = tonumber(os.getenv("BENCH_ROWS"))
local stride = tonumber(os.getenv("BENCH_STRIDE") or "1")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "1")
local span = tonumber(os.getenv("BENCH_SPAN") or "1")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (number or 0))
end

function request()
  local id = math.random(0, math.floor(rows / stride) - 1) * stride + offset + math.random(0, span - 1)
  local headers = {}
  if auth ~= "" then headers["Authorization"] = auth end
  if cookie ~= "" then headers["Cookie"] = cookie end
  if accept ~= "" then headers["Accept"] = accept end
  return wrk.format("GET", wrk.path .. id, headers)
end
