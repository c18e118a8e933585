-- `expire_missed` looks for unsent rows whose window has closed: without this index it
-- read every pending row of the outbox on each dispatcher round.
CREATE INDEX outbox_window ON outbox (state, window_end);
