// Package app holds the Identity use cases: seed users, log in, refresh
// (rotate) and log out. Requests reach it already authenticated by the
// ports' transaction-token check; it decides what the credentials allow and
// mints the access tokens.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

// Sealer encrypts the results kept for idempotent retries, bound to a record
// id (capability.VaultSealer over a vault.Keyring).
type Sealer interface {
	Seal(id, plaintext string) (string, error)
	Open(id, sealed string) (string, error)
}

// Tokens is what the app needs to mint access tokens.
type Tokens struct {
	Issuer   *token.Issuer
	Audience string        // aud of every access token
	ClientID string        // client_id of every access token
	Lifetime time.Duration // at most token.Access.MaxLifetime()
}

// Service runs the use cases.
type Service struct {
	repo   domain.Repository
	tokens Tokens
	sealer Sealer
	params domain.HashParams
	log    *slog.Logger
	now    func() time.Time
	// dummyHash is verified against when the user is unknown, so that an
	// unknown name costs the same argon2id work as a wrong password.
	dummyHash string
}

// New returns the use cases. now defaults to time.Now.
func New(repo domain.Repository, tokens Tokens, sealer Sealer, params domain.HashParams, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if tokens.Lifetime <= 0 || tokens.Lifetime > token.Access.MaxLifetime() {
		tokens.Lifetime = token.Access.MaxLifetime()
	}
	return &Service{
		repo: repo, tokens: tokens, sealer: sealer, params: params, log: log, now: now,
		dummyHash: domain.HashPassword("tokenrelay-dummy-password", params),
	}
}

// NewUser is an account to seed.
type NewUser struct {
	Username, Password, DisplayName string
	Scopes                          []string
}

// Seed creates the users that do not exist yet. An existing user keeps its
// password and scopes, so that a changed password survives a restart.
func (s *Service) Seed(ctx context.Context, users []NewUser) error {
	for _, nu := range users {
		name, err := domain.NormalizeUsername(nu.Username)
		if err != nil {
			return fmt.Errorf("seed %q: %w", nu.Username, err)
		}
		if err := domain.CheckPassword(nu.Password); err != nil {
			return fmt.Errorf("seed %q: %w", nu.Username, err)
		}
		if _, err := s.repo.UserByName(ctx, name); err == nil {
			continue
		} else if !errors.Is(err, domain.ErrNotFound) {
			return err
		}
		display := nu.DisplayName
		if display == "" {
			display = nu.Username
		}
		if _, _, err := s.repo.CreateUser(ctx, domain.User{
			ID: ids.New("usr"), Username: name, DisplayName: display,
			PasswordHash: domain.HashPassword(nu.Password, s.params), Scopes: nu.Scopes, CreatedAt: s.now(),
		}); err != nil {
			return err
		}
	}
	return nil
}

// Session is the result of Login and Refresh: what the client keeps.
type Session struct {
	AccessToken           string    `json:"access_token"`
	AccessTokenExpiresAt  time.Time `json:"access_token_expires_at"`
	RefreshToken          string    `json:"refresh_token"`
	RefreshTokenExpiresAt time.Time `json:"refresh_token_expires_at"`
	User                  User      `json:"user"`
}

// User is the public view of an account.
type User struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	DisplayName string   `json:"display_name"`
	Scopes      []string `json:"scopes"`
}

func publicUser(u domain.User) User {
	return User{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Scopes: u.Scopes}
}

// Login checks a user name and password and opens a session. Failures
// count towards the user name's lockout whether or not the user exists.
// A retry with the same idempotency key within domain.RetryWindow returns
// the first session.
func (s *Service) Login(ctx context.Context, username, password, key string) (Session, error) {
	name, err := domain.NormalizeUsername(username)
	if err != nil {
		return Session{}, err
	}
	if err := domain.CheckPassword(password); err != nil {
		return Session{}, err
	}
	now := s.now()
	since := now.Add(-domain.LockoutWindow)
	n, err := s.repo.LoginFailures(ctx, name, since)
	if err != nil {
		return Session{}, err
	}
	if n >= domain.MaxFailedLogins {
		s.log.WarnContext(ctx, "login refused: user name locked", "failures", n)
		return Session{}, domain.ErrTooManyAttempts
	}
	user, err := s.repo.UserByName(ctx, name)
	hash := user.PasswordHash
	switch {
	case errors.Is(err, domain.ErrNotFound):
		hash = s.dummyHash
	case err != nil:
		return Session{}, err
	}
	ok, verr := domain.VerifyPassword(password, hash)
	if verr != nil {
		s.log.ErrorContext(ctx, "stored password hash unreadable", "user", user.ID, "err", verr)
	}
	if err != nil || !ok {
		if _, err := s.repo.RecordLoginFailure(ctx, name, now, since); err != nil {
			return Session{}, err
		}
		s.log.InfoContext(ctx, "login failed", "user", user.ID)
		return Session{}, domain.ErrInvalidCredentials
	}
	if err := s.repo.ResetLoginFailures(ctx, name); err != nil {
		return Session{}, err
	}
	if key != "" {
		prev, err := s.repo.SessionByLoginKey(ctx, user.ID, key, now.Add(-domain.RetryWindow))
		switch {
		case err == nil && prev.SealedLogin != "" && prev.Active(now):
			return s.open("sessions/"+prev.ID, prev.SealedLogin)
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return Session{}, err
		}
	}
	ses := domain.Session{ID: ids.New("ses"), UserID: user.ID, CreatedAt: now, ExpiresAt: now.Add(domain.SessionLifetime), LoginKey: key}
	out, first, err := s.mint(ctx, user, ses, now)
	if err != nil {
		return Session{}, err
	}
	if key != "" {
		if ses.SealedLogin, err = s.seal("sessions/"+ses.ID, out); err != nil {
			return Session{}, err
		}
	}
	stored, created, err := s.repo.CreateSession(ctx, ses, first, now.Add(-domain.RetryWindow))
	if err != nil {
		return Session{}, err
	}
	if !created { // a concurrent retry with the key opened the session first
		return s.open("sessions/"+stored.ID, stored.SealedLogin)
	}
	s.log.InfoContext(ctx, "login", "user", user.ID, "session", ses.ID)
	s.purge(ctx, now)
	return out, nil
}

// mint issues an access token and a new refresh token for user in ses.
func (s *Service) mint(ctx context.Context, user domain.User, ses domain.Session, now time.Time) (Session, domain.RefreshToken, error) {
	access, claims, err := token.Issue(ctx, s.tokens.Issuer, token.Access, token.AccessClaims{
		Registered: token.Registered{Subject: user.ID, Audience: []string{s.tokens.Audience}, ExpiresAt: now.Add(s.tokens.Lifetime)},
		ClientID:   s.tokens.ClientID,
		Scope:      strings.Join(user.Scopes, " "),
	})
	if err != nil {
		return Session{}, domain.RefreshToken{}, fmt.Errorf("issue access token: %w", err)
	}
	raw, hash := domain.NewRefreshToken()
	expires := now.Add(domain.RefreshTokenLifetime)
	if ses.ExpiresAt.Before(expires) {
		expires = ses.ExpiresAt
	}
	rt := domain.RefreshToken{Hash: hash, SessionID: ses.ID, IssuedAt: now, ExpiresAt: expires}
	return Session{
		AccessToken: access, AccessTokenExpiresAt: claims.ExpiresAt,
		RefreshToken: raw, RefreshTokenExpiresAt: expires, User: publicUser(user),
	}, rt, nil
}

// Refresh rotates a refresh token: the old one stops working and the
// session gets a new access and refresh token. A token presented again
// after its rotation revokes its whole session, unless it is a retry with
// the same idempotency key within domain.RetryWindow, which gets the first
// result.
func (s *Service) Refresh(ctx context.Context, raw, key string) (Session, error) {
	if err := domain.CheckRefreshToken(raw); err != nil {
		return Session{}, err
	}
	now := s.now()
	hash := domain.HashRefreshToken(raw)
	tok, ses, err := s.repo.RefreshToken(ctx, hash)
	if errors.Is(err, domain.ErrNotFound) {
		s.log.InfoContext(ctx, "refresh refused: unknown token")
		return Session{}, domain.ErrInvalidCredentials
	}
	if err != nil {
		return Session{}, err
	}
	if !tok.UsedAt.IsZero() {
		return s.reused(ctx, tok, ses, key, now)
	}
	if !ses.Active(now) || !now.Before(tok.ExpiresAt) {
		s.log.InfoContext(ctx, "refresh refused: token expired or session ended", "session", ses.ID)
		return Session{}, domain.ErrInvalidCredentials
	}
	user, err := s.repo.UserByID(ctx, ses.UserID)
	if err != nil {
		return Session{}, err
	}
	out, next, err := s.mint(ctx, user, ses, now)
	if err != nil {
		return Session{}, err
	}
	var sealed string
	if key != "" {
		if sealed, err = s.seal(sealID(hash), out); err != nil {
			return Session{}, err
		}
	}
	old, err := s.repo.Rotate(ctx, hash, next, key, sealed, now)
	switch {
	case errors.Is(err, domain.ErrReused): // a concurrent request rotated it first
		return s.reused(ctx, old, ses, key, now)
	case errors.Is(err, domain.ErrNotFound):
		return Session{}, domain.ErrInvalidCredentials
	case err != nil:
		return Session{}, err
	}
	s.log.InfoContext(ctx, "refresh", "user", user.ID, "session", ses.ID)
	s.purge(ctx, now)
	return out, nil
}

// reused handles a refresh token that was rotated before: the first
// result for a retry in the window, else the whole session revoked.
func (s *Service) reused(ctx context.Context, tok domain.RefreshToken, ses domain.Session, key string, now time.Time) (Session, error) {
	if key != "" && key == tok.IdempotencyKey && tok.SealedResult != "" &&
		now.Sub(tok.UsedAt) <= domain.RetryWindow && ses.Active(now) {
		return s.open(sealID(tok.Hash), tok.SealedResult)
	}
	if ses.RevokedAt.IsZero() {
		if err := s.repo.RevokeSession(ctx, ses.ID, "refresh token reused", now); err != nil {
			return Session{}, err
		}
		s.log.WarnContext(ctx, "refresh token reused: session revoked", "user", ses.UserID, "session", ses.ID)
	}
	return Session{}, domain.ErrInvalidCredentials
}

// Logout revokes the session of any of its refresh tokens. An unknown or
// revoked token succeeds: there is nothing left to end.
func (s *Service) Logout(ctx context.Context, raw string) error {
	if err := domain.CheckRefreshToken(raw); err != nil {
		return err
	}
	_, ses, err := s.repo.RefreshToken(ctx, domain.HashRefreshToken(raw))
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if !ses.RevokedAt.IsZero() {
		return nil
	}
	if err := s.repo.RevokeSession(ctx, ses.ID, "logout", s.now()); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "logout", "user", ses.UserID, "session", ses.ID)
	return nil
}

func sealID(hash string) string { return "refresh_tokens/" + hash }

func (s *Service) seal(id string, out Session) (string, error) {
	b, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	sealed, err := s.sealer.Seal(id, string(b))
	if err != nil {
		return "", fmt.Errorf("seal result: %w", err)
	}
	return sealed, nil
}

func (s *Service) open(id, sealed string) (Session, error) {
	p, err := s.sealer.Open(id, sealed)
	if err != nil {
		return Session{}, fmt.Errorf("open sealed result: %w", err)
	}
	var out Session
	if err := json.Unmarshal([]byte(p), &out); err != nil {
		return Session{}, fmt.Errorf("decode sealed result: %w", err)
	}
	return out, nil
}

// purge forgets sealed results past the retry window. A failure is only
// logged: the next successful purge catches up.
func (s *Service) purge(ctx context.Context, now time.Time) {
	if err := s.repo.PurgeSealed(ctx, now.Add(-domain.RetryWindow)); err != nil {
		s.log.WarnContext(ctx, "purge sealed results", "err", err)
	}
}
