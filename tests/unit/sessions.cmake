# Check suite for captures run by agents: sessions, the outbox, reports and timers
# (core/sessions.c, db/session.c, db/outbox.c, migrations/0004) with a recording agent port.
nw_unit_test(test_sessions nw_core)
