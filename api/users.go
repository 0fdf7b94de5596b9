package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/trackline/trackline/accounts"
	"github.com/trackline/trackline/store"
)

// Web app accounts: the admin API invites a customer's users (its own, with a customer
// token) and the operators. An invitation is a one-time link to the web app where the
// invited user chooses a password (package accounts); the answer carries it once.

// UserStore is what the invitation endpoints need of the store; *store.DB is one.
type UserStore interface {
	accounts.Writer
	Users(customerID string) ([]store.User, error)
}

// WithUsers enables the invitation endpoints; links are made on the web app at appURL
// (e.g. https://app.example.com; "" gives paths) and work for ttl.
func WithUsers(db UserStore, appURL string, ttl time.Duration) Option {
	return func(a *API) { a.users, a.appURL, a.inviteTTL = db, strings.TrimSuffix(appURL, "/"), ttl }
}

type inviteInput struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// userView is what the admin API shows of a user: never its password hash or TOTP secret.
type userView struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id,omitempty"`
	Email      string    `json:"email"`
	Role       string    `json:"role"`
	Active     bool      `json:"active"` // has chosen a password
	TwoFactor  bool      `json:"two_factor"`
	Created    time.Time `json:"created"`
}

func viewUser(u store.User) userView {
	return userView{ID: u.ID, CustomerID: u.CustomerID, Email: u.Email, Role: string(u.Role), Active: u.PasswordHash != "",
		TwoFactor: len(u.TOTPSecret) > 0, Created: u.Created}
}

// inviteCustomerUser invites an admin or member of the customer {id}.
func (a *API) inviteCustomerUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	return a.invite(w, r, id, func(role string) bool { return role == "admin" || role == "member" }, "role: admin or member")
}

// inviteOperator invites an operator (the operator token only).
func (a *API) inviteOperator(w http.ResponseWriter, r *http.Request) error {
	return a.invite(w, r, "", func(role string) bool { return role == "" || role == "operator" }, "role: operator")
}

func (a *API) invite(w http.ResponseWriter, r *http.Request, customerID string, roleOK func(string) bool, roleMsg string) error {
	if a.users == nil {
		return errStatus(http.StatusServiceUnavailable, "", "web app accounts are not available")
	}
	var in inviteInput
	if err := decodeBody(w, r, maxBody, &in, false); err != nil {
		return err
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if !accounts.ValidEmail(email) {
		return errStatus(http.StatusBadRequest, "email", "email: not an email address")
	}
	if !roleOK(in.Role) {
		return errStatus(http.StatusBadRequest, "role", roleMsg)
	}
	role := store.Role(in.Role)
	if customerID == "" {
		role = store.RoleOperator
	}
	token, u, err := accounts.Invite(r.Context(), a.users, who(r).actor(), store.User{CustomerID: customerID, Email: email, Role: role},
		a.inviteTTL, a.now())
	if errors.Is(err, store.ErrEmailTaken) {
		return errStatus(http.StatusConflict, "email", "email: a user with this address exists")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, struct {
		User    userView  `json:"user"`
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
	}{viewUser(u), a.appURL + accounts.InvitePath(token), a.now().Add(a.inviteTTL).UTC()})
	return nil
}

// listUsers lists the customer's users.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	if a.users == nil {
		return errStatus(http.StatusServiceUnavailable, "", "web app accounts are not available")
	}
	id := r.PathValue("id")
	if _, err := a.pool.Customer(id); err != nil {
		return err
	}
	us, err := a.users.Users(id)
	if err != nil {
		return err
	}
	out := make([]userView, 0, len(us))
	for _, u := range us {
		out = append(out, viewUser(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}
