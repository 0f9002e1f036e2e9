-- get.lua: plain GET of the URL given to wrk (headers from -H); only adds the BENCH line.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
