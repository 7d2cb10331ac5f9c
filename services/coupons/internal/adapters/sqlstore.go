// Package adapters holds the Coupons store on SQL: SQLite (the embedded
// default) and PostgreSQL through one set of statements, with
// dialect-specific DDL in migrations/.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/domain"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationSet names Coupons' migrations in a shared schema_migrations table.
const MigrationSet = "coupons"

// Store is the SQL implementation of domain.Repository.
type Store struct {
	db     *sqldb.DB
	ledger capabilitysql.Ledger[domain.Confirmation, domain.Exercise] // ledger, audited
}

var _ domain.Repository = (*Store)(nil)

// NewStore migrates db to Coupons' schema and returns the store.
func NewStore(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := sqldb.MigrateDir(ctx, db, migrations, "migrations", MigrationSet); err != nil {
		return nil, err
	}
	l, err := ledger.Audited(ctx, db, Issuer, authn.TxnFrom, func(c domain.Confirmation) audit.Event {
		return audit.Event{Issuer: Issuer, JTI: c.JTI, Kind: token.Confirmation.Name(), Subject: c.UserID,
			CheckoutID: c.CheckoutID, ExpiresAt: c.ExpiresAt}
	})
	if err != nil {
		return nil, err
	}
	return &Store{db: db, ledger: l}, nil
}

// Issuer is the domain's issuer name, the iss of its confirmation tokens
// and the service of its audit events.
const Issuer = "coupons"

const campaignColumns = `code, description, kind, amount_off, percent_off_bps, minimum_spend, currency, valid_from, valid_until`

// couponSelect reads coupons with their campaign's terms.
const couponSelect = `SELECT cp.id, cp.user_id, cp.state, cp.granted_by, cp.idempotency_key, cp.redeemed_jti,
	cp.redeemed_order_id, cp.redeemed_at, cp.created_at, ca.code, ca.description, ca.kind, ca.amount_off,
	ca.percent_off_bps, ca.minimum_spend, ca.currency, ca.valid_from, ca.valid_until
	FROM coupons cp JOIN campaigns ca ON ca.code = cp.campaign_code `

func scanCoupon(row capabilitysql.Scanner) (domain.Coupon, error) {
	var cp domain.Coupon
	var redeemed sql.NullTime
	ca := &cp.Campaign
	err := row.Scan(&cp.ID, &cp.UserID, &cp.State, &cp.GrantedBy, &cp.IdempotencyKey, &cp.RedeemedJTI,
		&cp.RedeemedOrder, &redeemed, &cp.CreatedAt, &ca.Code, &ca.Description, &ca.Kind, &ca.AmountOff,
		&ca.PercentOffBPS, &ca.MinimumSpend, &ca.Currency, &ca.ValidFrom, &ca.ValidUntil)
	if errors.Is(err, sql.ErrNoRows) {
		return cp, domain.ErrNotFound
	}
	cp.RedeemedAt, cp.CreatedAt = capabilitysql.TimeOf(redeemed), cp.CreatedAt.UTC()
	ca.ValidFrom, ca.ValidUntil = ca.ValidFrom.UTC(), ca.ValidUntil.UTC()
	return cp, err
}

func couponByID(ctx context.Context, q capabilitysql.Querier, id string) (domain.Coupon, error) {
	return scanCoupon(q.QueryRowContext(ctx, couponSelect+`WHERE cp.id = $1`, id))
}

// Grant implements domain.Repository.
func (s *Store) Grant(ctx context.Context, cp domain.Coupon) (domain.Coupon, error) {
	cp.ID, cp.State = ids.New("cpn"), domain.CouponAvailable
	var out domain.Coupon
	err := s.db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := s.db.Cached(sqlTx) // statements prepared once, run in sqlTx
		if cp.IdempotencyKey != "" {
			prev, err := scanCoupon(tx.QueryRowContext(ctx, couponSelect+
				`WHERE cp.granted_by = $1 AND cp.user_id = $2 AND cp.idempotency_key = $3 AND cp.idempotency_key <> ''`,
				cp.GrantedBy, cp.UserID, cp.IdempotencyKey))
			if err == nil {
				if !prev.Campaign.SameTerms(cp.Campaign) {
					return domain.ErrIdempotencyConflict
				}
				out = prev
				return nil
			}
			if !errors.Is(err, domain.ErrNotFound) {
				return err
			}
		}
		// On PostgreSQL the insert waits for a concurrent insert of the same
		// code to commit, so the read below sees whichever campaign won.
		ca := cp.Campaign
		if _, err := tx.ExecContext(ctx, `INSERT INTO campaigns (`+campaignColumns+`, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (code) DO NOTHING`,
			ca.Code, ca.Description, ca.Kind, ca.AmountOff, ca.PercentOffBPS, ca.MinimumSpend, ca.Currency,
			ca.ValidFrom.UTC(), ca.ValidUntil.UTC(), cp.CreatedAt.UTC()); err != nil {
			return err
		}
		var stored domain.Campaign
		err := tx.QueryRowContext(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE code = $1`, ca.Code).Scan(
			&stored.Code, &stored.Description, &stored.Kind, &stored.AmountOff, &stored.PercentOffBPS,
			&stored.MinimumSpend, &stored.Currency, &stored.ValidFrom, &stored.ValidUntil)
		if err != nil {
			return err
		}
		if !stored.SameTerms(ca) {
			return domain.ErrCampaignConflict
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO coupons (id, user_id, campaign_code, state, granted_by,
			idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (user_id, campaign_code) DO NOTHING`,
			cp.ID, cp.UserID, ca.Code, cp.State, cp.GrantedBy, cp.IdempotencyKey, cp.CreatedAt.UTC())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			if err != nil {
				return err
			}
			// The coupon as stored (PostgreSQL keeps times to the
			// microsecond), what a retry reads back.
			out, err = couponByID(ctx, tx, cp.ID)
			return err
		}
		// The user already holds this campaign: one coupon per user.
		out, err = scanCoupon(tx.QueryRowContext(ctx, couponSelect+`WHERE cp.user_id = $1 AND cp.campaign_code = $2`,
			cp.UserID, ca.Code))
		return err
	})
	if sqldb.IsUniqueViolation(err) && cp.IdempotencyKey != "" {
		// A concurrent grant with the same key committed first: return it.
		return s.Grant(ctx, cp)
	}
	if err != nil {
		return domain.Coupon{}, fmt.Errorf("coupons: grant: %w", err)
	}
	return out, nil
}

// Coupons implements domain.Repository.
func (s *Store) Coupons(ctx context.Context, userID string) ([]domain.Coupon, error) {
	rows, err := s.db.Cached(nil).QueryContext(ctx, couponSelect+`WHERE cp.user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("coupons: list: %w", err)
	}
	defer rows.Close()
	var out []domain.Coupon
	for rows.Next() {
		cp, err := scanCoupon(rows)
		if err != nil {
			return nil, fmt.Errorf("coupons: list: %w", err)
		}
		out = append(out, cp)
	}
	return out, rows.Err()
}

// CouponByCode implements domain.Repository.
func (s *Store) CouponByCode(ctx context.Context, userID, code string) (domain.Coupon, error) {
	return scanCoupon(s.db.Cached(nil).QueryRowContext(ctx, couponSelect+`WHERE cp.user_id = $1 AND cp.campaign_code = $2`,
		userID, code))
}

const confirmationColumns = `jti, user_id, checkout_id, coupon_id, code, discount, currency, idempotency_key,
	sealed_token, expires_at, created_at`

func scanConfirmation(row capabilitysql.Scanner) (domain.Confirmation, error) {
	var c domain.Confirmation
	err := row.Scan(&c.JTI, &c.UserID, &c.CheckoutID, &c.CouponID, &c.Code, &c.Discount, &c.Currency,
		&c.IdempotencyKey, &c.SealedToken, &c.ExpiresAt, &c.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return c, domain.ErrNotFound
	}
	c.ExpiresAt, c.CreatedAt = c.ExpiresAt.UTC(), c.CreatedAt.UTC()
	return c, err
}

var confirmations = capabilitysql.Confirmations[domain.Confirmation]{
	Table: capabilitysql.Table[domain.Confirmation]{Columns: confirmationColumns, Scan: scanConfirmation,
		Values: func(c domain.Confirmation) []any {
			return []any{c.JTI, c.UserID, c.CheckoutID, c.CouponID, c.Code, c.Discount, c.Currency, c.IdempotencyKey,
				c.SealedToken, c.ExpiresAt.UTC(), c.CreatedAt.UTC()}
		}},
	UserKey: func(c domain.Confirmation) (string, string) { return c.UserID, c.IdempotencyKey },
}

// SaveConfirmation implements domain.Repository.
func (s *Store) SaveConfirmation(ctx context.Context, c domain.Confirmation) (domain.Confirmation, bool, error) {
	prev, created, err := s.ledger.SaveConfirmation(ctx, s.db, c)
	switch {
	case err != nil:
		return domain.Confirmation{}, false, fmt.Errorf("coupons: save confirmation: %w", err)
	case !created && (prev.CheckoutID != c.CheckoutID || prev.Code != c.Code):
		return domain.Confirmation{}, false, domain.ErrIdempotencyConflict
	}
	return prev, created, nil
}

// ConfirmationByKey implements domain.Repository.
func (s *Store) ConfirmationByKey(ctx context.Context, userID, key string) (domain.Confirmation, error) {
	return confirmations.ByKey(ctx, s.db.Cached(nil), userID, key)
}

// Confirmation implements domain.Repository.
func (s *Store) Confirmation(ctx context.Context, jti string) (domain.Confirmation, error) {
	return confirmations.ByJTI(ctx, s.db.Cached(nil), jti)
}

const exerciseColumns = `jti, order_id, state, coupon_id, redemption_id, discount, currency, reason, applied_at, compensated_at`

func scanExercise(row capabilitysql.Scanner) (domain.Exercise, error) {
	var x domain.Exercise
	var applied, compensated sql.NullTime
	err := row.Scan(&x.JTI, &x.OrderID, &x.State, &x.CouponID, &x.RedemptionID, &x.Discount, &x.Currency,
		&x.Reason, &applied, &compensated)
	if errors.Is(err, sql.ErrNoRows) {
		return x, domain.ErrNotFound
	}
	x.AppliedAt, x.CompensatedAt = capabilitysql.TimeOf(applied), capabilitysql.TimeOf(compensated)
	return x, err
}

var exercises = capabilitysql.Exercises[domain.Exercise]{Table: capabilitysql.Table[domain.Exercise]{
	Columns: exerciseColumns, Scan: scanExercise,
	Values: func(x domain.Exercise) []any {
		return []any{x.JTI, x.OrderID, x.State, x.CouponID, x.RedemptionID, x.Discount, x.Currency, x.Reason,
			capabilitysql.NullTime(x.AppliedAt), capabilitysql.NullTime(x.CompensatedAt)}
	},
}}

var ledger = capabilitysql.Ledger[domain.Confirmation, domain.Exercise]{
	Confirmations: confirmations, Exercises: exercises, HasReason: true,
	Head: func(x domain.Exercise) (string, domain.ExerciseState, time.Time) {
		return x.OrderID, x.State, x.AppliedAt
	},
}

// Exercise implements domain.Repository: the coupon's redemption is the
// ledger's effect.
func (s *Store) Exercise(ctx context.Context, jti, orderID string, now time.Time) (domain.Exercise, error) {
	x, err := s.ledger.Exercise(ctx, s.db, jti, orderID, func(c domain.Confirmation) domain.Exercise {
		return domain.Exercise{JTI: jti, OrderID: orderID, State: domain.ExerciseApplied, CouponID: c.CouponID,
			RedemptionID: ids.New("rdm"), Discount: c.Discount, Currency: c.Currency, AppliedAt: now}
	}, func(ctx context.Context, tx sqldb.Cached, c domain.Confirmation, x domain.Exercise) (domain.Exercise, error) {
		// Every refusal below rolls the claim back with it: the token stays
		// unexercised and may still be voided.
		cp, err := couponByID(ctx, tx, c.CouponID)
		if err != nil {
			return x, err
		}
		if err := cp.Campaign.Window(now).Err(); err != nil {
			return x, err
		}
		// The conditional update is the coupon's one-time-use authority: of
		// two confirmations of one coupon, only the transaction whose update
		// matches an available coupon redeems it (PostgreSQL re-checks the
		// condition after waiting for the row lock; SQLite runs one writer).
		res, err := tx.ExecContext(ctx, `UPDATE coupons SET state = $1, redeemed_jti = $2, redeemed_order_id = $3,
			redeemed_at = $4 WHERE id = $5 AND state = $6`,
			domain.CouponRedeemed, jti, orderID, now.UTC(), c.CouponID, domain.CouponAvailable)
		if err != nil {
			return x, err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 { // redeemed by another confirmation
			err = domain.ReasonAlreadyUsed.Err()
		}
		return x, err
	})
	if err != nil {
		return domain.Exercise{}, fmt.Errorf("coupons: exercise: %w", err)
	}
	return x, nil
}

// Compensate implements domain.Repository: the coupon's restoration is the
// ledger's undo.
func (s *Store) Compensate(ctx context.Context, jti, orderID, reason string, now time.Time) (domain.Exercise, error) {
	x, err := s.ledger.Compensate(ctx, s.db, jti, orderID, capabilitysql.Compensation[domain.Confirmation, domain.Exercise]{
		Reason: reason, Now: now,
		Void: func(c domain.Confirmation) domain.Exercise {
			return domain.Exercise{JTI: jti, OrderID: orderID, State: domain.ExerciseCompensated, CouponID: c.CouponID,
				Discount: c.Discount, Currency: c.Currency, Reason: reason, CompensatedAt: now}
		},
		// An applied exercise is the one that redeemed the coupon, and only
		// this compensation undoes it, so the coupon is redeemed by this jti.
		Undo: func(ctx context.Context, tx sqldb.Cached, c domain.Confirmation, x domain.Exercise) (domain.Exercise, error) {
			_, err := tx.ExecContext(ctx, `UPDATE coupons SET state = $1, redeemed_jti = '', redeemed_order_id = '',
				redeemed_at = NULL WHERE id = $2 AND redeemed_jti = $3`, domain.CouponAvailable, c.CouponID, jti)
			return x, err
		},
	})
	if err != nil {
		return domain.Exercise{}, fmt.Errorf("coupons: compensate: %w", err)
	}
	return x, nil
}
