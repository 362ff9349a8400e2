-- wrk: POST a new account, a different one each time (BENCH_AUTH: the Authorization header).
local auth = os.getenv("BENCH_AUTH") or ""
local threads = 0
local grades = {"A", "B", "B", "C", "C", "C", "D", "D"}
local industries = {"manufacturing", "it_software", "finance", "retail", "healthcare", "logistics"}
local regions = {"north_china", "east_china", "south_china", "southwest_china", "japan", "overseas"}
local cities = {"Shanghai", "Beijing", "Shenzhen", "Chengdu", "Osaka", "Singapore"}
local sizes = {"micro", "small", "medium", "large", "enterprise"}
local sent = 0

function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (number or 0))
  tag = string.format("%d-%d", os.time(), number or 0)
end

local function pick(list) return list[math.random(1, #list)] end

-- the phone is unique per thread and second (the CRM warns of a duplicate phone)
function request()
  sent = sent + 1
  local n = math.random(1, 999999)
  local body = string.format(
    '{"name": "Bench %s-%d Trading Co., Ltd.", "type": "customer", "grade": "%s", ' ..
    '"industry": "%s", "source": "website", "region": "%s", "city": "%s", ' ..
    '"phone": "+86 2%d %04d%04d", "website": "https://www.bench%d.example.com", ' ..
    '"size": "%s", "annual_revenue": "%d.00", "tags": ["smb"], ' ..
    '"description": "Created by the HTTP benchmark."}',
    tag, sent, pick(grades), pick(industries), pick(regions), pick(cities),
    number or 0, os.time() % 10000, sent % 10000, n,
    pick(sizes), math.random(100000, 500000000))
  local headers = {["Content-Type"] = "application/json"}
  if auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("POST", wrk.path, headers, body)
end
