-- Hand-off to the server's own scheduler (issue 11): a Mastodon-API account whose
-- participant chose `--hand-off` has its posts created ahead of time as scheduled statuses
-- (`scheduled_at`), so they go out even if picket is down at the strike hour.
ALTER TABLE accounts ADD COLUMN hand_off BOOLEAN NOT NULL DEFAULT FALSE;
-- The scheduled status's id on the account's server while the row is `handed_off`.
ALTER TABLE outbox ADD COLUMN scheduled_id TEXT;
-- The server refused to schedule this post (its limits, its software): picket sends it
-- itself when it is due.
ALTER TABLE outbox ADD COLUMN hand_off_refused BOOLEAN NOT NULL DEFAULT FALSE;
-- Only rows with a scheduled status on a server (handed off, or withdrawn and waiting
-- to be deleted there): the dispatcher looks them up every few seconds.
CREATE INDEX outbox_scheduled ON outbox (account_id, run_at) WHERE scheduled_id IS NOT NULL;
