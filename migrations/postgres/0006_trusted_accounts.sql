-- Whether an account's addresses were typed by the operator (`picket account add`): its
-- servers are then reached without the guard that keeps visitors' addresses public.
-- The command line's own participant (is_local) has only accounts the operator added.
ALTER TABLE accounts ADD COLUMN trusted BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE accounts SET trusted = TRUE
 WHERE participant_id IN (SELECT id FROM participants WHERE is_local = TRUE);
