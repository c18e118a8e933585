-- Who invited whom, for participants who joined through an invitation link (signatures
-- already record it).
ALTER TABLE participants ADD COLUMN invited_by TEXT;
CREATE INDEX participants_invited_by ON participants (invited_by);
