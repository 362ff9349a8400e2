-- wrk: GET the same list page on every request (BENCH_AUTH: the Authorization header).
local auth = os.getenv("BENCH_AUTH") or ""
-- bench_screens.py's pages: the session's Cookie header, and Accept: text/html
local cookie = os.getenv("BENCH_COOKIE") or ""
local accept = os.getenv("BENCH_ACCEPT") or ""

function request()
  local headers = {}
  if auth ~= "" then headers["Authorization"] = auth end
  if cookie ~= "" then headers["Cookie"] = cookie end
  if accept ~= "" then headers["Accept"] = accept end
  return wrk.format("GET", wrk.path, headers)
end
