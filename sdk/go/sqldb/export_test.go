package sqldb

// IsCached reports whether query is in db's statement cache.
func IsCached(db *DB, query string) bool {
	_, ok := db.stmts.stmts.Load(query)
	return ok
}

// WaitPrepared waits until the background preparation of query that a
// transaction started (see prepareLater) is over, if one is under way: a
// test waits on the preparation itself, never on a clock.
func WaitPrepared(db *DB, query string) {
	c := &db.stmts
	c.mu.Lock()
	done := c.pending[query]
	c.mu.Unlock()
	if done != nil {
		<-done
	}
}
