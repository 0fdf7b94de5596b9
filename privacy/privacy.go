package privacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/trackline/trackline/pool"
	"github.com/trackline/trackline/pool/e164"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// Store is what the data-subject operations and customer erasure need of the store;
// *store.DB is one.
type Store interface {
	// CallsOfCaller lists the calls of the caller with this pseudonym, newest first.
	CallsOfCaller(customerID, pseudonym string) ([]store.Call, error)
	// Recording reads one recording; an error wrapping store.ErrNotFound if there is none.
	Recording(id string) (store.Recording, error)
	// WebhookMessagesOf lists the webhook messages of calls, with where they went.
	WebhookMessagesOf(ctx context.Context, customerID string, callIDs []string) ([]store.SentMessage, error)
	// HasActiveCalls tells whether a customer has calls in progress.
	HasActiveCalls(customerID string) (bool, error)
	// Write runs fn in a durable transaction.
	Write(ctx context.Context, fn func(*store.Tx) error) error
	// Audit queues an entry for the next commit without waiting for it.
	Audit(ctx context.Context, e store.AuditEntry) error
	// Compact rewrites the store file without what was deleted.
	Compact(ctx context.Context) (store.CompactStats, error)
	// CompactionDue tells whether deleted records may still be in the file's freed pages.
	CompactionDue() (bool, error)
}

// Service looks up, exports and erases data subjects, and erases customers. It holds no
// state of its own: one Service may serve every surface at once.
type Service struct {
	db     Store
	keys   *keyring.Keyring
	recDir string
	objs   *recordings.Objects // nil: no object store
	pool   *pool.Pool
	log    *slog.Logger
	now    func() time.Time
}

// Option configures New.
type Option func(*Service)

// WithLogger sets the logger (erasures are logged at info, with counts and the
// compaction's figures, never a number).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithObjects erases recordings from the object store o too, and reads them from it for
// exports.
func WithObjects(o *recordings.Objects) Option { return func(s *Service) { s.objs = o } }

// files is where the recordings are: the tree under recDir and the object store.
func (s *Service) files() recordings.Files {
	return recordings.Files{Dir: s.recDir, Keys: s.keys, Objects: s.objs}
}

// WithClock sets the clock (tests): audit entries, an export's time, whether a customer is
// in service.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// New builds the service on the store db, the customers' keys (which must not be nil), the
// recordings under recDir and the pool p.
func New(db Store, keys *keyring.Keyring, recDir string, p *pool.Pool, opts ...Option) *Service {
	s := &Service{db: db, keys: keys, recDir: recDir, pool: p, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Subject is a caller at one customer, as Service.Subject resolves them: the value every
// operation on a caller takes. It holds the caller's number but never prints it.
type Subject struct {
	customerID string
	number     string // E.164; never logged or audited
	pseudonym  string // "" when the customer has no key: it has no calls with a pseudonym
}

// CustomerID is the customer the caller is a subject of.
func (s Subject) CustomerID() string { return s.customerID }

// String names the subject without the number, so that a Subject in a log line or an error
// does not leak it.
func (s Subject) String() string { return "a caller of customer " + s.customerID }

// GoString is String for %#v.
func (s Subject) GoString() string { return "privacy.Subject{" + strconv.Quote(s.String()) + "}" }

// Subject resolves the caller with this number, in any form e164.Normalize reads (national
// numbers in countryCode), at the customer customerID. A customer that does not exist gives
// an error wrapping pool.ErrUnknownCustomer; a number that is not one, ErrBadNumber. The
// customer is checked first. Who may ask for which customer is the caller's business.
func (s *Service) Subject(customerID, number, countryCode string) (Subject, error) {
	if _, err := s.pool.Customer(customerID); err != nil {
		return Subject{}, err
	}
	n, err := e164.Normalize(number, countryCode)
	if err != nil {
		return Subject{}, fmt.Errorf("%w: %w", ErrBadNumber, err)
	}
	sub := Subject{customerID: customerID, number: n}
	key, err := s.keys.Lookup(customerID)
	switch {
	case err == nil:
		sub.pseudonym = key.Pseudonym(n)
	case !errors.Is(err, keyring.ErrNoKey):
		return Subject{}, err
	}
	return sub, nil
}
