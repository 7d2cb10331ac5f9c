package adapters_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

// retention is the purge's default: 30 days.
const retention = 30 * 24 * time.Hour

// TestPurge (issue 15, item 8): a session and its refresh tokens go once
// the retention has passed since it expired or was revoked; a live one, or
// one ended within the retention, stays with every token (a rotated token
// must still find its session to revoke it); old login-failure windows go;
// users stay.
func TestPurge(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s, err := adapters.NewStore(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		u := user(t, s, "erin")
		expired, first := session(t, s, u) // expires at t0 + 30 days
		if _, err := s.Rotate(ctx, first.Hash, next(t0.Add(time.Hour)), "", "", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		revoked, revokedToken := session(t, s, u)
		if err := s.RevokeSession(ctx, revoked.ID, "logout", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordLoginFailure(ctx, "erin", t0, t0.Add(-domain.LockoutWindow)); err != nil {
			t.Fatal(err)
		}
		end := t0.Add(domain.SessionLifetime)
		live := domain.Session{ID: ids.New("ses"), UserID: u.ID, CreatedAt: end, ExpiresAt: end.Add(domain.SessionLifetime)}
		_, hash := domain.NewRefreshToken()
		if _, _, err := s.CreateSession(ctx, live, domain.RefreshToken{Hash: hash, IssuedAt: end, ExpiresAt: end.Add(domain.RefreshTokenLifetime)}, end); err != nil {
			t.Fatal(err)
		}

		// Revoked at t0 + 1 h, expired at t0 + 30 d: inside the retention
		// of both, nothing goes but the login failures.
		p, err := s.Purge(ctx, t0.Add(time.Hour-time.Second))
		if err != nil || p != (adapters.Purged{LoginFailures: 1}) {
			t.Fatalf("Purge inside the retention = %+v, %v; want only the old login-failure window", p, err)
		}
		// Past the retention of the revocation only.
		now := t0.Add(time.Hour + retention + time.Second)
		if p, err = s.Purge(ctx, now.Add(-retention)); err != nil || p != (adapters.Purged{Sessions: 1, RefreshTokens: 1}) {
			t.Fatalf("Purge past the revocation's retention = %+v, %v; want the revoked session and its token", p, err)
		}
		if _, _, err := s.RefreshToken(ctx, revokedToken.Hash); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("refresh token of the purged session: %v, want ErrNotFound", err)
		}
		if _, _, err := s.RefreshToken(ctx, first.Hash); err != nil {
			t.Fatalf("a rotated token of a session inside its retention was purged: %v", err)
		}
		// Past the expiry's retention.
		now = expired.ExpiresAt.Add(retention + time.Second)
		if p, err = s.Purge(ctx, now.Add(-retention)); err != nil || p != (adapters.Purged{Sessions: 1, RefreshTokens: 2}) {
			t.Fatalf("Purge past the expiry's retention = %+v, %v; want the expired session and its 2 tokens", p, err)
		}
		if _, ses, err := s.RefreshToken(ctx, hash); err != nil || ses.ID != live.ID {
			t.Fatalf("the live session's token: %v", err)
		}
		if _, err := s.UserByID(ctx, u.ID); err != nil {
			t.Fatalf("user purged: %v", err)
		}
	})
}

// TestConcurrentPurges runs two purges at once, as two replicas do: every
// row is deleted once and neither purge fails.
func TestConcurrentPurges(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s, err := adapters.NewStore(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		u := user(t, s, "frank")
		const sessions = 40
		for range sessions {
			session(t, s, u)
		}
		for i := range sessions {
			if _, err := s.RecordLoginFailure(t.Context(), fmt.Sprint("name", i), t0, t0.Add(-domain.LockoutWindow)); err != nil {
				t.Fatal(err)
			}
		}
		before := t0.Add(domain.SessionLifetime + time.Second)
		var wg sync.WaitGroup
		got := make([]adapters.Purged, 2)
		errs := make([]error, 2)
		for i := range got {
			wg.Go(func() { got[i], errs[i] = s.Purge(t.Context(), before) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("purges failed: %v, %v", errs[0], errs[1])
		}
		sum := adapters.Purged{Sessions: got[0].Sessions + got[1].Sessions, RefreshTokens: got[0].RefreshTokens + got[1].RefreshTokens,
			LoginFailures: got[0].LoginFailures + got[1].LoginFailures}
		if want := (adapters.Purged{Sessions: sessions, RefreshTokens: sessions, LoginFailures: sessions}); sum != want {
			t.Fatalf("purges deleted %+v and %+v; want %+v in all", got[0], got[1], want)
		}
	})
}
