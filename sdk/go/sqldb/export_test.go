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

// OnQueue makes db's SQLite committer call f each time a transaction
// queues for it. Set it before any transaction runs.
func OnQueue(db *DB, f func()) { db.commit.onQueue = f }

// GroupCommits returns the commits of batches of two or more transactions
// on db and the transactions they committed.
func GroupCommits(db *DB) (batches, members int64) {
	return db.commit.commits.Load(), db.commit.grouped.Load()
}
