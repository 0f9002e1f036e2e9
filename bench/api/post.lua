-- post.lua: POST with an empty body (Content-Length: 0) to the URL given to wrk, e.g.
-- .../packetCaptures/pc1/queryStatus?api-version=...; the Authorization header comes from -H.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

wrk.method = "POST"
wrk.body = ""
