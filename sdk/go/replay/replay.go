// Package replay enforces one-time use of token identifiers (the JWT "jti").
//
// A ristretto cache is the fast path that turns most replays away before any
// database work; it is never the authority, because ristretto may drop writes
// under its admission policy and evict entries before their TTL. The authority
// is a durable unique record of (iss, jti) that the caller writes inside its
// own database transaction, next to the effect the token guards.
//
// # Use
//
//	err := db.Tx(ctx, func(tx *sql.Tx) error {
//		if err := guard.Consume(ctx, tx, claims.Issuer, claims.ID, claims.ExpiresAt); err != nil {
//			return err // ErrReplayed: Connect code AlreadyExists
//		}
//		return placeOrder(ctx, tx, ...)
//	})
//	if err == nil {
//		guard.Mark(claims.Issuer, claims.ID, claims.ExpiresAt)
//	}
//
// The record lives in the table consumed_jtis, created by [Migrate] (or by
// [Migrations] applied with sqldb.MigrationSet([MigrationSet])). The name is
// fixed: each service owns its schema (PostgreSQL) or file (SQLite), and
// must, because the same confirmation token is consumed once by
// OrderProcessing and once by its issuer; two services sharing one
// consumed_jtis table would refuse each other's legitimate use.
//
// # Retention
//
// A record is needed only while its token could still be accepted: until
// its exp plus the verifier's leeway (at most [DefaultLeeway]). After that
// the verifier refuses the token on its exp alone, so [Guard.Prune] deletes
// the record. Every process that consumes tokens must run Prune
// periodically (OrderProcessing does, in its purge task every
// -purge-every), or the table grows by one row per consumed token for ever.
// Prune deletes in bounded batches and is safe from several replicas at
// once.
package replay

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// ErrReplayed reports that a (iss, jti) pair was already consumed. It is
// token.ErrReplayed, so rpcerr.Token maps it to AlreadyExists without
// the token package importing this one (and its database drivers).
var ErrReplayed = token.ErrReplayed

// ErrInvalidToken reports a Consume or Mark call without an issuer or a jti,
// which a verified token always has.
var ErrInvalidToken = errors.New("replay: token has no iss or jti")

// MigrationSet is the sqldb migration set under which [Migrations] must be
// applied, keeping their version numbers apart from the service's own.
const MigrationSet = "replay"

// DefaultLeeway is the clock skew a verifier may allow past exp, the
// maximum the design permits. A record is kept, and cached, this long after
// its token expires.
const DefaultLeeway = 30 * time.Second

// DefaultCacheEntries is the default capacity of the fast-path cache; at
// roughly 200 bytes per entry it bounds the cache to a few tens of MB.
const DefaultCacheEntries = 1 << 16

//go:embed *.sql
var migrationFiles embed.FS

// Migrations returns the DDL of the consumed_jtis table as numbered files
// for sqldb.Migrate, to be applied with sqldb.MigrationSet([MigrationSet]).
func Migrations() fs.FS { return migrationFiles }

// Migrate creates or upgrades the consumed_jtis table in db.
func Migrate(ctx context.Context, db *sqldb.DB) error {
	return sqldb.Migrate(ctx, db, migrationFiles, sqldb.MigrationSet(MigrationSet))
}

type config struct {
	entries int64
	leeway  time.Duration
	now     func() time.Time
}

// Option configures [New].
type Option func(*config)

// WithCacheEntries sets how many consumed tokens the fast path remembers.
// Default [DefaultCacheEntries]. A smaller cache only sends more replays to
// the database; it never lets one through.
func WithCacheEntries(n int64) Option {
	return func(c *config) { c.entries = n }
}

// WithLeeway sets how long past exp a token may still be accepted by the
// verifier, and so how long its record must outlive it. Default
// [DefaultLeeway]. Setting it below the verifier's leeway lets [Guard.Prune]
// delete a record whose token is still accepted: a replay window.
func WithLeeway(d time.Duration) Option {
	return func(c *config) { c.leeway = d }
}

// WithClock sets the time source for cache lifetimes. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// Guard records consumed tokens. It is safe for concurrent use; Close it to
// stop the cache's goroutines.
type Guard struct {
	db     *sqldb.DB
	cache  *ristretto.Cache[string, struct{}]
	leeway time.Duration
	now    func() time.Time
}

// New returns a Guard whose records live in db (used by [Guard.Prune];
// [Guard.Consume] writes through the caller's transaction).
func New(db *sqldb.DB, opts ...Option) (*Guard, error) {
	cfg := config{entries: DefaultCacheEntries, leeway: DefaultLeeway, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.entries < 1 {
		return nil, fmt.Errorf("replay: cache entries must be positive, got %d", cfg.entries)
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, struct{}]{
		NumCounters:        10 * cfg.entries, // ristretto's advice: 10x the entries
		MaxCost:            cfg.entries,
		BufferItems:        64,
		IgnoreInternalCost: true, // every entry costs 1, so MaxCost counts entries
	})
	if err != nil {
		return nil, fmt.Errorf("replay: cache: %w", err)
	}
	return &Guard{db: db, cache: cache, leeway: cfg.leeway, now: cfg.now}, nil
}

// Close stops the cache. The Guard must not be used afterwards.
func (g *Guard) Close() { g.cache.Close() }

// key joins iss and jti unambiguously, whatever bytes they hold: the length
// prefix fixes where the issuer ends.
func key(iss, jti string) string { return strconv.Itoa(len(iss)) + ":" + iss + jti }

// Seen reports whether the fast path knows (iss, jti) as consumed. true is
// definitive (a replay); false means nothing: the cache may have dropped or
// evicted the entry, so only [Guard.Consume] can tell.
func (g *Guard) Seen(iss, jti string) bool {
	_, ok := g.cache.Get(key(iss, jti))
	return ok
}

// Consume records (iss, jti) as used inside tx, so that the record commits or
// rolls back together with the effect it guards. It returns [ErrReplayed]
// without touching the database when the fast path has seen the token, and
// when the record already exists. Concurrent consumers of one token: exactly
// one commits, the others get ErrReplayed (on PostgreSQL a second insert
// waits for the first transaction and then conflicts, or succeeds if that
// one rolled back).
//
// The insert uses ON CONFLICT DO NOTHING rather than failing on the
// primary key, so a replay does not abort a PostgreSQL transaction: the
// caller may still write, for example, the stored result of an idempotent
// retry. exp is the token's expiry; the record outlives it by the leeway.
//
// A retry of a request that already succeeded is a replay to Consume: look
// up the stored result by idempotency key first and return it. After tx
// commits, call [Guard.Mark] so that replays are refused in memory.
func (g *Guard) Consume(ctx context.Context, tx *sql.Tx, iss, jti string, exp time.Time) error {
	if iss == "" || jti == "" {
		return ErrInvalidToken
	}
	if g.Seen(iss, jti) {
		return ErrReplayed
	}
	// Through the statement cache: three of these run in every PlaceOrder.
	res, err := g.db.Cached(tx).ExecContext(ctx,
		`INSERT INTO consumed_jtis (iss, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (iss, jti) DO NOTHING`,
		iss, jti, unixCeil(exp))
	if err != nil {
		return fmt.Errorf("replay: record jti: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("replay: record jti: %w", err)
	}
	if n == 0 {
		return ErrReplayed
	}
	return nil
}

// Mark tells the fast path that (iss, jti) is consumed, until exp plus the
// leeway. Call it only after the transaction that consumed the token has
// committed: marking earlier would refuse the token forever if that
// transaction rolled back. It waits until the entry is visible, so a replay
// arriving next is refused in memory; ristretto may still decline to keep
// the entry, which costs a database round trip, never a replay.
func (g *Guard) Mark(iss, jti string, exp time.Time) {
	ttl := exp.Add(g.leeway).Sub(g.now())
	if iss == "" || jti == "" || ttl <= 0 {
		return
	}
	g.cache.SetWithTTL(key(iss, jti), struct{}{}, 1, ttl)
	g.cache.Wait()
}

// PruneBatch is how many records one Prune statement deletes at most; Prune
// repeats the statement, each in a short transaction of its own, while a
// batch comes back full.
const PruneBatch = 1000

// Prune deletes the records of tokens that expired more than the leeway
// before the time before, typically time.Now(), and returns how many it
// deleted, also when it fails part way. This is safe because the verifier
// refuses such tokens on their exp alone: a replay of a pruned token is
// refused as expired before it reaches [Guard.Consume]. Run it periodically
// in every process that consumes tokens (OrderProcessing runs it in its
// purge task, see orderprocessing.Service.Purge).
//
// It is idempotent and safe to run from several replicas at once: each
// batch deletes at most [PruneBatch] rows in one transaction; on PostgreSQL
// the batch is chosen with FOR UPDATE SKIP LOCKED, so concurrent prunes
// delete disjoint rows without waiting for each other (a prune that finds
// its batch short because another holds the rest stops, and the other
// finishes); on SQLite the write lock serialises them. Each row is counted
// by the one prune that deleted it.
func (g *Guard) Prune(ctx context.Context, before time.Time) (int64, error) {
	// A record with expires_at = e may be deleted once e + leeway < before,
	// i.e. e < before - leeway; flooring keeps the bound conservative.
	cutoff := before.Add(-g.leeway).Unix()
	lock := ""
	if g.db.Dialect() == sqldb.Postgres {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	query := `DELETE FROM consumed_jtis WHERE (iss, jti) IN (
		SELECT iss, jti FROM consumed_jtis WHERE expires_at < $1 LIMIT $2` + lock + `)`
	var total int64
	for {
		var deleted int64
		// Batches keep each transaction short: on SQLite it holds the one
		// write lock that every Consume needs.
		err := g.db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, query, cutoff, PruneBatch)
			if err != nil {
				return err
			}
			deleted, err = res.RowsAffected()
			return err
		})
		total += deleted
		if err != nil {
			return total, fmt.Errorf("replay: prune: %w", err)
		}
		if deleted < PruneBatch {
			return total, nil
		}
	}
}

// unixCeil rounds exp up to a whole second, so that a stored expiry is
// never earlier than the token's.
func unixCeil(exp time.Time) int64 {
	s := exp.Unix()
	if exp.Nanosecond() > 0 {
		s++
	}
	return s
}
