package sqldb

// IsCached reports whether query is in db's statement cache.
func IsCached(db *DB, query string) bool {
	_, ok := db.stmts.stmts.Load(query)
	return ok
}
