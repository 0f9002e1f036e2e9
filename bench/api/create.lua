-- create.lua: PUT a new packet capture per request; each must be answered 201.
--
-- Arguments (after wrk's "--"): COLLECTION TARGET TAG API_VERSION
--   COLLECTION  path of the watcher's packetCaptures, e.g.
--               /subscriptions/S/resourceGroups/rg/providers/Microsoft.Network/networkWatchers/nw/packetCaptures
--   TARGET      VM resource id for properties.target
--   TAG         letters/digits unique to this run, so names never collide with earlier captures
--   API_VERSION e.g. 2024-07-01
-- Names are b<TAG>t<thread id>n<per-thread counter>: unique without any cross-thread state.
-- Every status other than 201 is counted in "bad"; the first one (status and the start of the
-- body) is kept in "first_bad" for the report.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local collection, target, tag, api_version
local n = 0
bad = 0

function init(args)
   collection, target, tag, api_version = args[1], args[2], args[3], args[4]
   if not (collection and target and tag and api_version) then
      error("create.lua wants: COLLECTION TARGET TAG API_VERSION")
   end
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   n = n + 1
   local name = string.format("b%st%dn%d", tag, id, n)
   local body = string.format(
      '{"properties":{"target":"%s","storageLocation":{"filePath":"/var/captures/%s.cap"}}}',
      target, name)
   return wrk.format("PUT", collection .. "/" .. name .. "?api-version=" .. api_version, nil, body)
end

function response(status, headers, body)
   if status ~= 201 then
      bad = bad + 1
      if first_bad == nil then
         first_bad = status .. ":" .. string.sub(body or "", 1, 160)
      end
   end
end
