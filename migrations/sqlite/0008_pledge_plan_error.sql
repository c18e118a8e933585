-- Why the planner could not plan a pledge (its stored choices no longer fit the campaign,
-- or planning it failed): recorded so one bad row is reported and skipped instead of
-- stopping the planner; NULL once it plans again. Joining again clears it.
ALTER TABLE pledges ADD COLUMN plan_error TEXT;
