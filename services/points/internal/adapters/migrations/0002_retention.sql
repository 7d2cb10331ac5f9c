-- The purge (capabilitysql.Purge) looks for confirmations whose token
-- expired before its cutoff, oldest first; without this index every purge
-- would scan the whole table.
CREATE INDEX confirmations_expires_at ON confirmations (expires_at);
