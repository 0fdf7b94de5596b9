package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"
)

// SentDelivery is where a webhook message went: an endpoint, its URL, and what came of it.
type SentDelivery struct {
	EndpointID   string        `json:"endpoint_id"`
	URL          string        `json:"url"`
	State        DeliveryState `json:"state"`
	AttemptCount int           `json:"attempt_count"`
	LastAttempt  time.Time     `json:"last_attempt,omitzero"`
	LastStatus   int           `json:"last_status,omitempty"`
}

// SentMessage is a webhook message, its payload as sent, with where it went.
type SentMessage struct {
	Message
	Deliveries []SentDelivery `json:"deliveries"` // never nil
}

// WebhookMessagesOf lists the customer's webhook messages of the subjects (calls' ids: the
// events of those calls), each subject's in the order they were made, with their
// deliveries to the endpoints the customer has (a deleted endpoint's went with it): what
// was sent where about a caller (package privacy). Messages not indexed yet are indexed
// first.
func (db *DB) WebhookMessagesOf(ctx context.Context, customerID string, subjects []string) ([]SentMessage, error) {
	if db.pg != nil {
		return db.pgWebhookMessagesOf(customerID, subjects)
	}
	if err := db.IndexOutbox(ctx); err != nil {
		return nil, err
	}
	out := []SentMessage{}
	err := db.View(func(tx *Tx) error {
		type ep struct{ id, url string }
		var eps []ep
		prefix := compose(customerID, "")
		c := tx.tx.Bucket(bucketEndpoints).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e struct {
				URL string `json:"url"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			eps = append(eps, ep{string(k[len(prefix):]), e.URL})
		}
		msgs := tx.tx.Bucket(bucketMessages)
		sc := tx.tx.Bucket(bucketMsgSubject).Cursor()
		for _, subject := range subjects {
			sp := compose(customerID, subject, "")
			for k, _ := sc.Seek(sp); k != nil && bytes.HasPrefix(k, sp); k, _ = sc.Next() {
				id := string(k[len(sp):])
				v := msgs.Get(compose(customerID, id))
				if v == nil {
					continue
				}
				m, err := decodeMessage(msgs, customerID, id, v)
				if err != nil {
					return err
				}
				sm := SentMessage{Message: m, Deliveries: []SentDelivery{}}
				for _, e := range eps {
					d, err := tx.delivery(customerID, e.id, id)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err != nil {
						return err
					}
					sd := SentDelivery{EndpointID: e.id, URL: e.url, State: d.State, AttemptCount: d.AttemptCount}
					if n := len(d.Attempts); n > 0 {
						sd.LastAttempt, sd.LastStatus = d.Attempts[n-1].Time, d.Attempts[n-1].Status
					}
					sm.Deliveries = append(sm.Deliveries, sd)
				}
				out = append(out, sm)
			}
		}
		return nil
	})
	return out, err
}
