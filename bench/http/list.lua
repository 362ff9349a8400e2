-- wrk: GET the same list page on every request (BENCH_AUTH: the Authorization header).
local auth = os.getenv("BENCH_AUTH") or ""

function request()
  local headers = {}
  if auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("GET", wrk.path, headers)
end
