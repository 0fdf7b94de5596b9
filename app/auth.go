package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trackline/trackline/accounts"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/trackline/trackline/store"
)

// loginPage shows the login form.
func (a *App) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := a.session(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	a.render(w, r, http.StatusOK, "login", language(r), map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a redirect after login on this app: a path, never another site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n") || len(next) > 512 {
		return "/"
	}
	return next
}

// login checks an account's password (and TOTP code, when it has two-factor login on).
// Failures answer one message whatever failed, and count against the account; after
// limitFailures in limitWindow the account's logins are refused for the rest of the window.
// The login form has no session yet, so it carries no CSRF token: SameSite cookies and the
// Origin check guard it instead.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	lang := language(r)
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			a.fail(w, r, lang, errCSRF)
			return
		}
	}
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	pw, code := r.PostFormValue("password"), strings.TrimSpace(r.PostFormValue("code"))
	next := safeNext(r.PostFormValue("next"))
	again := func(status int, msg string) {
		a.render(w, r, status, "login", lang, map[string]any{"Next": next, "Email": email, "Error": msg})
	}
	if email == "" || len(email) > 254 || pw == "" || len(pw) > accounts.MaxPassword {
		again(http.StatusBadRequest, msg(lang, "login_failed"))
		return
	}
	now := a.now()
	if until, blocked := a.limit.blocked(email, now); blocked {
		w.Header().Set("Retry-After", until.Sub(now).Round(time.Second).String())
		again(http.StatusTooManyRequests, msg(lang, "login_blocked"))
		return
	}
	u, err := a.db.UserByEmail(email)
	if err != nil || u.PasswordHash == "" {
		a.decoy.Verify(pw)
		a.limit.fail(email, now)
		again(http.StatusUnauthorized, msg(lang, "login_failed"))
		return
	}
	ok, err := accounts.VerifyPassword(u.PasswordHash, pw)
	if err == nil && ok && len(u.TOTPSecret) > 0 {
		ok = totp.Validate(code, b32.EncodeToString(u.TOTPSecret))
	}
	if err != nil || !ok {
		a.limit.fail(email, now)
		again(http.StatusUnauthorized, msg(lang, "login_failed"))
		return
	}
	a.limit.succeed(email)
	if err := a.startSession(r.Context(), w, r, u); err != nil {
		a.fail(w, r, lang, err)
		return
	}
	a.auditAs(r.Context(), "user:"+u.ID, "user.login", u.CustomerID)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session; it needs the session's CSRF token like any change.
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	if s, _, ok := a.session(r); ok {
		if err := a.checkCSRF(r, s); err != nil {
			a.fail(w, r, "", err)
			return
		}
	}
	a.endSession(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// invitation reads the user an invitation link names, without using it up.
func (a *App) invitation(token string) (store.User, bool) {
	if len(token) < 20 || len(token) > 64 {
		return store.User{}, false
	}
	inv, err := a.db.Invitation(accounts.Hash(token))
	if err != nil || !a.now().Before(inv.Expires) {
		return store.User{}, false
	}
	u, err := a.db.User(inv.UserID)
	return u, err == nil
}

// invitePage shows the form that sets an invited user's password.
func (a *App) invitePage(w http.ResponseWriter, r *http.Request) {
	lang := language(r)
	u, ok := a.invitation(r.PathValue("token"))
	if !ok {
		a.fail(w, r, lang, &pageError{status: http.StatusGone, msg: msg(lang, "invite_gone")})
		return
	}
	a.render(w, r, http.StatusOK, "invite", lang, map[string]any{"Email": u.Email, "Token": r.PathValue("token")})
}

// acceptInvite sets the invited user's password, uses the invitation up and logs them in.
// The link itself is the secret (a one-time token whose hash alone is stored).
func (a *App) acceptInvite(w http.ResponseWriter, r *http.Request) {
	lang := language(r)
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	token := r.PathValue("token")
	u, ok := a.invitation(token)
	if !ok {
		a.fail(w, r, lang, &pageError{status: http.StatusGone, msg: msg(lang, "invite_gone")})
		return
	}
	pw := r.PostFormValue("password")
	if err := accounts.CheckPassword(pw); err != nil {
		a.render(w, r, http.StatusBadRequest, "invite", lang, map[string]any{"Email": u.Email, "Token": token, "Error": msg(lang, "password_rule")})
		return
	}
	if pw != r.PostFormValue("confirm") {
		a.render(w, r, http.StatusBadRequest, "invite", lang, map[string]any{"Email": u.Email, "Token": token, "Error": msg(lang, "password_mismatch")})
		return
	}
	phc, err := accounts.HashPassword(pw)
	if err != nil {
		a.fail(w, r, lang, err)
		return
	}
	var expired bool
	err = a.db.Write(r.Context(), func(tx *store.Tx) error {
		inv, err := tx.TakeInvitation(accounts.Hash(token), a.now())
		if errors.Is(err, store.ErrInvitationExpired) {
			expired = true
			return nil // commit: the expired invitation is deleted
		}
		if err != nil {
			return err
		}
		cur, err := tx.User(inv.UserID)
		if err != nil {
			return err
		}
		cur.PasswordHash = phc
		return tx.PutUser(&cur)
	})
	if expired || errors.Is(err, store.ErrNotFound) {
		a.fail(w, r, lang, &pageError{status: http.StatusGone, msg: msg(lang, "invite_gone")})
		return
	}
	if err != nil {
		a.fail(w, r, lang, err)
		return
	}
	u.PasswordHash = phc
	a.auditAs(r.Context(), "user:"+u.ID, "user.invite_accept", u.CustomerID)
	if err := a.startSession(r.Context(), w, r, u); err != nil {
		a.fail(w, r, lang, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// invite makes a user without a password and its one-time link, valid InviteTTL.
func (a *App) invite(ctx context.Context, actor string, u store.User) (string, error) {
	token, _, err := accounts.Invite(ctx, a.db, actor, u, a.cfg.InviteTTL, a.now())
	if err != nil {
		return "", err
	}
	return accounts.InvitePath(token), nil
}

// --- two-factor login

// accountPage shows the user's account and, when two-factor login is off, a new secret to
// turn it on with (scanned as a QR code or typed in).
func (a *App) accountPage(w http.ResponseWriter, q *request) error {
	data := map[string]any{"TOTP": len(q.user.TOTPSecret) > 0}
	if len(q.user.TOTPSecret) == 0 {
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "trackline", AccountName: q.user.Email})
		if err != nil {
			return err
		}
		img, err := key.Image(200, 200)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return err
		}
		data["Secret"] = key.Secret()
		data["QR"] = "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	return a.page(w, q, "account", data)
}

// enableTOTP turns two-factor login on once the user proved the secret with a valid code.
func (a *App) enableTOTP(w http.ResponseWriter, q *request) error {
	secret, code := strings.TrimSpace(q.r.PostFormValue("secret")), strings.TrimSpace(q.r.PostFormValue("code"))
	raw, err := base32Secret(secret)
	if err != nil || !totp.Validate(code, secret) {
		return errBadInput(msg(q.lang, "totp_wrong"))
	}
	err = a.db.Write(q.r.Context(), func(tx *store.Tx) error {
		u, err := tx.User(q.user.ID)
		if err != nil {
			return err
		}
		u.TOTPSecret = raw
		e := store.AuditEntry{Time: a.now(), Actor: q.actor(), Action: "user.totp_on", CustomerID: u.CustomerID, IDs: []string{u.ID}}
		if err := tx.PutUser(&u); err != nil {
			return err
		}
		return tx.AppendAudit(&e)
	})
	if err != nil {
		return err
	}
	http.Redirect(w, q.r, "/account", http.StatusSeeOther)
	return nil
}

// base32Secret decodes a TOTP secret as otp shows it (base32, no padding).
func base32Secret(s string) ([]byte, error) {
	if len(s) < 16 || len(s) > 128 {
		return nil, otp.ErrValidateInputInvalidLength
	}
	return b32.DecodeString(strings.ToUpper(s))
}
