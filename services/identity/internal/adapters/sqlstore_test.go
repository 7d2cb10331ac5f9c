package adapters_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func user(t *testing.T, s *adapters.Store, name string) domain.User {
	t.Helper()
	u, created, err := s.CreateUser(t.Context(), domain.User{ID: ids.New("usr"), Username: name, PasswordHash: "h", Scopes: []string{"shop", "admin"}, CreatedAt: t0})
	if err != nil || !created {
		t.Fatalf("CreateUser: %v %v", created, err)
	}
	return u
}

func session(t *testing.T, s *adapters.Store, u domain.User) (domain.Session, domain.RefreshToken) {
	t.Helper()
	ses := domain.Session{ID: ids.New("ses"), UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(domain.SessionLifetime)}
	_, hash := domain.NewRefreshToken()
	rt := domain.RefreshToken{Hash: hash, IssuedAt: t0, ExpiresAt: t0.Add(domain.RefreshTokenLifetime)}
	if _, created, err := s.CreateSession(t.Context(), ses, rt, t0); err != nil || !created {
		t.Fatalf("CreateSession: created=%v err=%v", created, err)
	}
	rt.SessionID = ses.ID
	return ses, rt
}

func next(at time.Time) domain.RefreshToken {
	_, hash := domain.NewRefreshToken()
	return domain.RefreshToken{Hash: hash, IssuedAt: at, ExpiresAt: at.Add(domain.RefreshTokenLifetime)}
}

// TestStoreContract is the one suite every Identity store passes, run
// against SQLite and PostgreSQL.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s, err := adapters.NewStore(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()

		t.Run("users", func(t *testing.T) {
			u := user(t, s, "alice")
			again, created, err := s.CreateUser(ctx, domain.User{ID: ids.New("usr"), Username: "alice", PasswordHash: "other", CreatedAt: t0})
			if err != nil || created || again.ID != u.ID || again.PasswordHash != "h" {
				t.Fatalf("second CreateUser = %+v %v %v; want the first, unchanged", again, created, err)
			}
			byID, err := s.UserByID(ctx, u.ID)
			if err != nil || byID.Username != "alice" || len(byID.Scopes) != 2 || !byID.CreatedAt.Equal(t0) {
				t.Fatalf("UserByID = %+v, %v", byID, err)
			}
			if _, err := s.UserByName(ctx, "nobody"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown user: %v", err)
			}
		})

		t.Run("rotation", func(t *testing.T) {
			ses, first := session(t, s, user(t, s, "bob"))
			got, gotSes, err := s.RefreshToken(ctx, first.Hash)
			if err != nil || got.SessionID != ses.ID || !got.UsedAt.IsZero() || gotSes.UserID != ses.UserID || !gotSes.Active(t0) {
				t.Fatalf("RefreshToken = %+v %+v %v", got, gotSes, err)
			}
			second := next(t0.Add(time.Minute))
			if _, err := s.Rotate(ctx, first.Hash, second, "k1", "sealed", t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			old, err := s.Rotate(ctx, first.Hash, next(t0), "k1", "sealed2", t0.Add(2*time.Minute))
			if !errors.Is(err, domain.ErrReused) || old.IdempotencyKey != "k1" || old.SealedResult != "sealed" || !old.UsedAt.Equal(t0.Add(time.Minute)) {
				t.Fatalf("second rotation = %+v, %v; want ErrReused with the first use", old, err)
			}
			if got, _, err := s.RefreshToken(ctx, second.Hash); err != nil || got.SessionID != ses.ID {
				t.Fatalf("new token = %+v, %v", got, err)
			}
			if _, err := s.Rotate(ctx, "unknown", next(t0), "", "", t0); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown token: %v", err)
			}
		})

		t.Run("concurrent rotations: exactly one wins", func(t *testing.T) {
			_, first := session(t, s, user(t, s, "carol"))
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Go(func() { _, errs[i] = s.Rotate(ctx, first.Hash, next(t0), "", "", t0) })
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, domain.ErrReused):
					t.Errorf("loser: %v, want ErrReused", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d rotations won, want 1", wins)
			}
		})

		t.Run("revoke and purge", func(t *testing.T) {
			ses, first := session(t, s, user(t, s, "dave"))
			if _, err := s.Rotate(ctx, first.Hash, next(t0), "k", "sealed", t0); err != nil {
				t.Fatal(err)
			}
			if err := s.PurgeSealed(ctx, t0.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.RefreshToken(ctx, first.Hash); got.SealedResult != "sealed" {
				t.Fatal("purge removed a result inside the window")
			}
			if err := s.PurgeSealed(ctx, t0.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.RefreshToken(ctx, first.Hash); got.SealedResult != "" || got.IdempotencyKey != "k" {
				t.Fatalf("after purge: %+v", got)
			}
			for range 2 {
				if err := s.RevokeSession(ctx, ses.ID, "logout", t0.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			_, got, err := s.RefreshToken(ctx, first.Hash)
			if err != nil || got.Active(t0.Add(time.Hour)) || !got.RevokedAt.Equal(t0.Add(time.Hour)) || got.RevokeReason != "logout" {
				t.Fatalf("revoked session = %+v, %v", got, err)
			}
		})

		t.Run("login key", func(t *testing.T) {
			u := user(t, s, "erin")
			window := func(now time.Time) time.Time { return now.Add(-domain.RetryWindow) }
			open := func(id string, at time.Time) (domain.Session, bool) {
				t.Helper()
				ses := domain.Session{ID: id, UserID: u.ID, CreatedAt: at, ExpiresAt: at.Add(time.Hour), LoginKey: "lk", SealedLogin: "sealed " + id}
				got, created, err := s.CreateSession(ctx, ses, next(at), window(at))
				if err != nil {
					t.Fatal(err)
				}
				return got, created
			}
			first, created := open(ids.New("ses"), t0)
			if !created || first.SealedLogin == "" {
				t.Fatalf("CreateSession = %+v, %v", first, created)
			}
			got, err := s.SessionByLoginKey(ctx, u.ID, "lk", t0.Add(-time.Minute))
			if err != nil || got.ID != first.ID || got.SealedLogin != first.SealedLogin {
				t.Fatalf("SessionByLoginKey = %+v, %v", got, err)
			}
			if _, err := s.SessionByLoginKey(ctx, u.ID, "lk", t0.Add(time.Minute)); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("outside the window: %v", err)
			}
			// A retry in the window: the first session, nothing stored.
			if again, created := open(ids.New("ses"), t0.Add(time.Second)); created || again.ID != first.ID || again.SealedLogin != first.SealedLogin {
				t.Fatalf("retry in the window = %+v, created %v; want the first session", again, created)
			}
			// After the window, or once the result is forgotten, the key
			// opens a new session.
			later, created := open(ids.New("ses"), t0.Add(domain.RetryWindow+time.Second))
			if !created || later.ID == first.ID {
				t.Fatalf("after the window = %+v, created %v; want a new session", later, created)
			}
			if err := s.RevokeSession(ctx, later.ID, "logout", t0.Add(domain.RetryWindow+2*time.Second)); err != nil {
				t.Fatal(err)
			}
			if again, created := open(ids.New("ses"), t0.Add(domain.RetryWindow+3*time.Second)); !created || again.ID == later.ID {
				t.Fatalf("after the session was revoked = %+v, created %v; want a new session", again, created)
			}
		})

		t.Run("concurrent logins with one key: one session", func(t *testing.T) {
			u := user(t, s, "gina")
			var wg sync.WaitGroup
			var mu sync.Mutex
			got := map[string]int{}
			for range 20 {
				wg.Go(func() {
					ses := domain.Session{ID: ids.New("ses"), UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), LoginKey: "same", SealedLogin: "sealed"}
					stored, _, err := s.CreateSession(ctx, ses, next(t0), t0.Add(-time.Minute))
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
					got[stored.ID]++
				})
			}
			wg.Wait()
			if len(got) != 1 {
				t.Fatalf("sessions returned: %v, want one for all", got)
			}
		})

		t.Run("login failures", func(t *testing.T) {
			name := "frank"
			window := func(now time.Time) time.Time { return now.Add(-domain.LockoutWindow) }
			for i := 1; i <= 3; i++ {
				now := t0.Add(time.Duration(i) * time.Minute)
				n, err := s.RecordLoginFailure(ctx, name, now, window(now))
				if err != nil || n != i {
					t.Fatalf("failure %d: count %d, %v", i, n, err)
				}
			}
			if n, err := s.LoginFailures(ctx, name, window(t0.Add(5*time.Minute))); err != nil || n != 3 {
				t.Fatalf("LoginFailures = %d, %v", n, err)
			}
			later := t0.Add(time.Minute + domain.LockoutWindow)
			if n, _ := s.LoginFailures(ctx, name, window(later)); n != 0 {
				t.Fatalf("after the window: %d failures, want 0", n)
			}
			if n, err := s.RecordLoginFailure(ctx, name, later, window(later)); err != nil || n != 1 {
				t.Fatalf("first failure of a new window: %d, %v", n, err)
			}
			if err := s.ResetLoginFailures(ctx, name); err != nil {
				t.Fatal(err)
			}
			if n, _ := s.LoginFailures(ctx, name, window(later)); n != 0 {
				t.Fatalf("after reset: %d", n)
			}
		})
	})
}
